"""Findings in words, for ``ticket show`` and ``ticket findings``."""

from __future__ import annotations

from .schemas import FindingView, TicketFindings

__all__ = ["finding_line", "finding_lines"]


def finding_lines(findings: TicketFindings) -> list[str]:
    """A ticket's findings, one line each with its evidence below, for ``ticket show``."""
    if findings.snapshot_id is None:
        return ["(no snapshot attached)"]
    if not findings.findings:
        return [f"none in snapshot {findings.snapshot_id}"]
    lines = []
    for view in findings.findings:
        lines.append(finding_line(view))
        evidence = ", ".join(f"{k}={v}" for k, v in view.finding.evidence.items())
        lines.append(f"    evidence: {evidence}")
    if findings.suggested_category or findings.suggested_urgency:
        lines.append(
            f"suggested: category {findings.suggested_category or '-'}, "
            f"urgency {findings.suggested_urgency or '-'}"
        )
    return lines


def finding_line(view: FindingView) -> str:
    """One finding in a line: severity, id, title, suggestion, decision."""
    finding = view.finding
    decided = f"  [{view.decision.value} by {view.decided_by}]" if view.decision else ""
    suggests = []
    if finding.category:
        suggests.append(f"category {finding.category}")
    if finding.urgency:
        suggests.append(f"urgency {finding.urgency}")
    hint = f"  (suggests {', '.join(suggests)})" if suggests else ""
    return f"{finding.severity.value.upper():8} {finding.id}: {finding.title}{hint}{decided}"
