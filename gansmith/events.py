"""Events: what the policies and the run doctor found or did, as plain data for metrics.jsonl and the report."""
from __future__ import annotations


def event(kind: str, severity: str, message: str, evidence: dict | None = None, remedy: str = "") -> dict:
    """severity: info, warning or error; `remedy` says in plain words what the user (or --auto-fix) can do."""
    return {"kind": kind, "severity": severity, "message": message, "evidence": evidence or {}, "remedy": remedy}
