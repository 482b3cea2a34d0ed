"""Writing a reproduction's rows as ``results.csv`` and ``results.md`` side by side."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

__all__ = ["markdown_table", "write_csv", "write_results"]


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def markdown_table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """A markdown table of ``rows`` (dicts), columns in ``columns`` order (default: the keys
    of the first row, then any new keys in order of appearance). Missing cells print "–"."""
    if columns is None:
        columns = []
        for row in rows:
            columns += [key for key in row if key not in columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_csv(path: str | Path, rows: Sequence[dict], columns: Sequence[str]) -> None:
    """Write ``rows`` to ``path`` as CSV with the given ``columns``: other keys are left out,
    missing ones left empty."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_results(
    out: str | Path,
    rows: Sequence[dict],
    title: str,
    notes: str = "",
    columns: Sequence[str] | None = None,
) -> str:
    """
    Write ``out/results.csv`` (one line per row) and ``out/results.md`` (``title``, the table,
    then ``notes``: settings, sources of the published numbers), and remove an earlier run's
    ``out/settings.json`` (the experiments write theirs when they end). Returns the markdown.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # These results belong to a run in progress, which writes its settings.json when it ends:
    # an earlier run's must not sit beside them if this one is cut short.
    (out / "settings.json").unlink(missing_ok=True)
    table = markdown_table(rows, columns)
    header = table.splitlines()[0].strip("| ").split(" | ")
    write_csv(out / "results.csv", rows, header)
    markdown = f"# {title}\n\n{table}\n"
    if notes:
        markdown += f"\n{notes.strip()}\n"
    (out / "results.md").write_text(markdown)
    return markdown
