"""Numbers as people read them, shared by the console and the report (no heavy imports)."""
from __future__ import annotations


def duration(seconds: float) -> str:
    """'1 h 05 min', '3 min 07 s', '42 s'."""
    minutes, s = divmod(int(seconds), 60)
    h, m = divmod(minutes, 60)
    return f"{h} h {m:02d} min" if h else (f"{m} min {s:02d} s" if m else f"{s} s")
