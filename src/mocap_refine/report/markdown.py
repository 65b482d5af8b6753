"""comparison.md and summary.md: the report's tables as Markdown, for
reading in a terminal or on GitHub. Drawn from the same table views as the
HTML pages (report.html), never parsed back."""

from __future__ import annotations

from .data import OVERVIEW_NOTE, TableView

NOTES = (
    "Bold: best value per column among methods whose replay stayed valid "
    "(among the diverged ones when all diverged). Lower is better for errors, "
    "drifts, wall time, `cost_replays` (wall time in open-loop replays of the "
    "clip) and saturation; higher for `reward_mean` and `tracked_fraction`; "
    "`fall_frame` \"never\" is best, `fall_reason` says which rule fired "
    "(height, orientation, contact, diverged). **DIVERGED**: the "
    "physics blew up at that frame and the replay state was frozen there; "
    "its numbers describe that frozen replay. **FAILED**: no result "
    "(the job failed or its file is missing)."
)
LEFT_ALIGNED = ("clip", "method", "status")


def markdown_table(view: TableView) -> str:
    """GitHub pipe table; best cells bold, DIVERGED/FAILED status bold."""
    lines = ["| " + " | ".join(view.columns) + " |",
             "|" + "|".join("---" if c in LEFT_ALIGNED else "---:" for c in view.columns) + "|"]
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
    return head + markdown_table(view) + "\n" + NOTES + "\n"


def summary_markdown(title: str, intro: str, overview: TableView, table: TableView) -> str:
    return (f"# {title}\n\n{intro} {OVERVIEW_NOTE}\n\n" + markdown_table(overview)
            + "\n## Every clip and method\n\n" + markdown_table(table) + "\n"
            + NOTES.replace("per column", "per column within each clip") + "\n")
