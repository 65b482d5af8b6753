"""The report's HTML pages (comparison.html, summary.html): table views and
notes in, standalone HTML out, through Jinja2 templates. The Snakemake report
shows HTML inline (Markdown only as a download), so every page is
self-contained."""

from __future__ import annotations

from pathlib import Path

import jinja2
import markupsafe

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
<table><thead><tr>{% for c in view.columns %}<th>{{ c | breakable }}</th>{% endfor %}</tr></thead><tbody>
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
}

_ENV = jinja2.Environment(loader=jinja2.DictLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined,
                          trim_blocks=True, lstrip_blocks=True)
_ENV.globals.update(zip=zip, style=STYLE)


def breakable(name: str) -> markupsafe.Markup:
    """A column name that may wrap after each underscore (escaped, with
    <wbr>): the 17-column tables then fit a 1366-pixel screen instead of
    hiding their last columns (seen in headless Chromium)."""
    return markupsafe.Markup("_<wbr>").join(markupsafe.escape(part) for part in str(name).split("_"))


_ENV.filters["breakable"] = breakable


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
