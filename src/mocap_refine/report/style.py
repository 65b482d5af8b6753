"""What every figure of the report shares: a method's colour, the page DPI,
readable log axes, the "no data" note, legends that sit outside the data and
the PNG encoding."""

from __future__ import annotations

import io
import zlib

import matplotlib

matplotlib.use("Agg")  # files only, no display; must precede pyplot
from matplotlib import ticker  # noqa: E402

from ..io import atomic_path  # noqa: E402
from ..methods import REGISTRY  # noqa: E402

# A method has the same colour in every figure (its registry entry).
METHOD_COLORS = {name: spec.color for name, spec in REGISTRY.items()}
REFERENCE_COLOR = "#000000"
# Colours for names not in the registry (new methods, renamed variants),
# chosen by a stable hash of the name so they do not depend on which other
# methods are configured.
_EXTRA_COLORS = ("#d62728", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#393b79", "#637939")
DPI = 100
# Figures are saved with a palette of at most this many colours (see save_png).
PNG_COLORS = 256


def method_color(method: str) -> str:
    """Colour of a method in every figure (hex string)."""
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    return _EXTRA_COLORS[zlib.crc32(method.encode()) % len(_EXTRA_COLORS)]


def log_axis(ax, which: str = "y") -> None:
    """Log scale with readable ticks: plain numbers at 1, 2, 5 x 10^k over
    up to 3 decades, powers of ten beyond. Call after plotting (reads the
    data limits)."""
    axis = ax.yaxis if which == "y" else ax.xaxis
    (ax.set_yscale if which == "y" else ax.set_xscale)("log")
    lo, hi = ax.get_ylim() if which == "y" else ax.get_xlim()
    if lo > 0 and hi / lo <= 1e3:
        axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    else:
        axis.set_major_locator(ticker.LogLocator(base=10, numticks=8))
        axis.set_major_formatter(ticker.LogFormatterSciNotation())
    axis.set_minor_formatter(ticker.NullFormatter())


def no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes,
            fontsize=10, color="#555555", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def legend_below(ax, ncol: int = 2, fontsize: int = 8, below: float = 0.16):
    """The axes' legend `below` (axes heights) under the axes, clear of its
    data and tick labels (the figure's constrained layout makes room)."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    return ax.legend(loc="upper center", bbox_to_anchor=(0.5, -below), ncol=max(1, min(ncol, len(handles))),
                     fontsize=fontsize, frameon=False, borderaxespad=0.0)


def line_widths(n: int) -> list:
    """Line width per method in drawing order: the first drawn is the
    widest, so a later method with identical data (a warm start that did not
    move) leaves its predecessor visible around it."""
    return [1.4 + 3.6 * (n - 1 - k) / max(n - 1, 1) for k in range(n)]


def save_png(fig, out_png, dpi: int = DPI) -> None:
    """`fig` as a palette PNG (at most PNG_COLORS colours, no dithering),
    written whole or not at all. A third of the bytes of matplotlib's RGBA
    PNG with no visible change (flat colours, antialiased lines and text
    keep their look): the report embeds every figure, and 15 clips must stay
    under 15 MB. Deterministic: the same figure gives the same bytes."""
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    buf.seek(0)
    with Image.open(buf) as im:
        palette = im.convert("RGB").quantize(colors=PNG_COLORS, method=Image.Quantize.MEDIANCUT,
                                             dither=Image.Dither.NONE)
    with atomic_path(out_png) as tmp:
        palette.save(tmp, format="PNG", optimize=True)
