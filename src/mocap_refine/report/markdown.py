"""comparison.md and summary.md: the report's tables as Markdown, for
reading in a terminal or on GitHub. Drawn from the same table views as the
HTML pages (report.html), never parsed back."""

from __future__ import annotations

from .data import METRIC_NOTES, OVERVIEW_NOTE, TableView


def markdown_table(view: TableView) -> str:
    """GitHub pipe table; best cells bold, DIVERGED/FAILED status bold."""
    numeric = [all(cells[k].numeric for _, cells in view.rows) if view.rows else False
               for k in range(len(view.columns))]
    lines = ["| " + " | ".join(view.columns) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    for state, cells in view.rows:
        texts = []
        for col, cell in zip(view.columns, cells):
            text = cell.text
            if col == "status" and state != "ok":
                word, _, rest = text.partition(" ")
                text = f"**{word.rstrip(':')}**{':' if word.endswith(':') else ''}" + (f" {rest}" if rest else "")
            elif cell.best:
                text = f"**{text}**"
            texts.append(text)
        lines.append("| " + " | ".join(texts) + " |")
    return "\n".join(lines) + "\n"


def clip_markdown(title: str, context: str, view: TableView) -> str:
    head = f"# {title}\n\n" + (f"{context}\n\n" if context else "")
    return head + markdown_table(view) + "\n" + METRIC_NOTES + "\n"


def summary_markdown(title: str, intro: str, overview: TableView, table: TableView) -> str:
    return (f"# {title}\n\n{intro} {OVERVIEW_NOTE}\n\n" + markdown_table(overview)
            + "\n## Every clip and method\n\n" + markdown_table(table) + "\n"
            + METRIC_NOTES.replace("per column", "per column within each clip") + "\n")
