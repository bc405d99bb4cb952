"""Energy figures for the reports: the detail table's J / W / W idle / tok/J columns, the HTML
energy table, and the sentence that states the source and the idle power subtracted (or why
there are no figures). Reads results.json data only; definitions in docs/metrics.md "Energy"."""

from __future__ import annotations

from typing import Any

HEADER = ["J", "W", "W idle", "J above idle", "tok/J"]


def _get(obj: Any, key: str) -> Any:
    """A field of a results.json part, read from the typed model (its extra fields are attributes)
    or from a plain dict."""
    if obj is None:
        return None
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def _num(x: Any, digits: int) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def has_energy(levels: list[Any]) -> bool:
    return any((_get(lv, "energy") or {}).get("joules") is not None for lv in levels)


def cells(level: Any) -> list[str]:
    e = _get(level, "energy") or {}
    return [_num(e.get("joules"), 1), _num(e.get("mean_watts"), 1), _num(e.get("idle_watts"), 1),
            _num(e.get("joules_above_idle"), 1), _num(e.get("tokens_per_joule"), 3)]


def note(cell: Any) -> str | None:
    """One line: where the figures come from and what was subtracted, or why there are none."""
    summary = _get(cell, "energy")
    if not summary:
        return None
    if not summary.get("source"):
        return f"Energy: none measured: {summary.get('reason')}."
    devices = ", ".join(summary.get("devices") or [])
    idle = summary.get("idle_watts")
    idle_text = (f"idle {idle:.1f} W over {summary.get('idle_s') or 0:.1f} s before the first level, "
                 "subtracted in 'J above idle'" if idle is not None else summary.get("idle_note") or "no idle figure")
    others = sorted(set(summary.get("by_source") or {}) - {summary["source"]})
    also = f"; also seen: {', '.join(others)} (not added: they may measure the same parts)" if others else ""
    return (f"Energy: {summary['source']} ({summary.get('kind')}: {devices}); {idle_text}; "
            f"tok/J = completion tokens / J{also}.")
