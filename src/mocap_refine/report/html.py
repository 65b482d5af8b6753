"""The report's HTML pages (comparison.html, summary.html, the replay
pages): table views and notes in, standalone HTML out, through Jinja2
templates. The Snakemake report shows HTML inline (Markdown and GIFs only as
downloads), so every page is self-contained."""

from __future__ import annotations

import base64
from pathlib import Path

import jinja2

from ..io import atomic_path
from .data import METRIC_NOTES, OVERVIEW_NOTE, TableView

STYLE = """
body { font-family: sans-serif; margin: 1em; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #bbb; padding: 3px 7px; }
th { background: #eee; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: bold; }
tr.failed td { background: #f8d7d7; }
tr.diverged td { background: #fdf0d0; }
p { max-width: 60em; }
img.replay { max-width: 100%; height: auto; image-rendering: auto; }
"""

TEMPLATES = {
    "base.html": """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>{{ style }}</style></head>
<body>
{% block body %}{% endblock %}
</body></html>
""",
    "table.html": """{% macro table(view) -%}
<table><thead><tr>{% for c in view.columns %}<th>{{ c }}</th>{% endfor %}</tr></thead><tbody>
{% for state, cells in view.rows -%}
<tr class="{{ state }}">{% for col, cell in zip(view.columns, cells) -%}
<td class="{{ ['num' if cell.numeric else '', 'best' if cell.best else ''] | select | join(' ') }}">
{%- if col == 'status' and state != 'ok' %}<b>{{ cell.text }}</b>{% else %}{{ cell.text }}{% endif -%}
</td>{% endfor %}</tr>
{% endfor -%}
</tbody></table>
{%- endmacro %}""",
    "clip.html": """{% extends "base.html" %}{% from "table.html" import table %}{% block body %}
<h1>{{ title }}</h1>
{% if context %}<p>{{ context }}</p>{% endif %}
{{ table(view) }}
<p>{{ notes }}</p>
{% endblock %}""",
    "summary.html": """{% extends "base.html" %}{% from "table.html" import table %}{% block body %}
<h1>{{ title }}</h1>
<p>{{ intro }} {{ overview_note }}</p>
{{ table(overview) }}
<h2>Every clip and method</h2>
{{ table(full) }}
<p>{{ notes }}</p>
{% endblock %}""",
    "gif.html": """{% extends "base.html" %}{% block body %}
<h2>{{ title }}</h2>
<img class="replay" alt="{{ title }}" src="data:image/gif;base64,{{ gif_b64 }}" width="{{ width }}" height="{{ height }}">
<p>{{ caption }}</p>
{% endblock %}""",
}

_ENV = jinja2.Environment(loader=jinja2.DictLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined,
                          trim_blocks=True, lstrip_blocks=True)
_ENV.globals.update(zip=zip, style=STYLE)


def render(template: str, **values) -> str:
    return _ENV.get_template(template).render(**values)


def clip_page(title: str, context: str, view: TableView) -> str:
    return render("clip.html", title=title, context=context, view=view, notes=METRIC_NOTES)


def summary_page(title: str, intro: str, overview: TableView, full: TableView) -> str:
    return render("summary.html", title=title, intro=intro, overview=overview, full=full,
                  overview_note=OVERVIEW_NOTE, notes=METRIC_NOTES.replace("per column", "per column within each clip"))


def write_text(path, text: str) -> None:
    """Write `text` to `path` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def gif_page(gif_path, out_html, title: str, caption: str = "") -> None:
    """A standalone HTML page showing the GIF (embedded as base64) at its
    own size, shrunk to the page width on narrow screens."""
    from PIL import Image

    data = Path(gif_path).read_bytes()
    with Image.open(gif_path) as im:
        width, height = im.size
    write_text(out_html, render("gif.html", title=title, caption=caption, width=width, height=height,
                                gif_b64=base64.b64encode(data).decode()))
