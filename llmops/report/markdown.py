"""Markdown table building blocks shared by the text tables, the HTML report and compare.

Their own module so that html.py and tables.py need not import each other (tables.py uses
html.py's summary; html.py only needs these).
"""

from __future__ import annotations

BENCH_HEADER = ["Conc", "Gen TPS", "Prompt TPS", "Min TTFT(s)", "Max TTFT(s)", "Success", "Total(s)"]


def markdown_table(header: list[str], rows: list[list[str]], align: str = "right") -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]

    def fmt_row(cells: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths, strict=False)) + " |"

    if align == "center":
        rule = "|" + "|".join(":" + "-" * w + ":" for w in widths) + "|"
    else:
        rule = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    return "\n".join([fmt_row(header), rule] + [fmt_row(r) for r in rows])
