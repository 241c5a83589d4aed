"""The findings API: a ticket's findings and decisions on them, the rules, the
categories."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.params import Parameter

from deskside.console.api import errors
from deskside.console.auth.guards import requires
from deskside.console.auth.identity import ApiIdentity, Scope
from deskside.console.tickets.categories import Categories

from .rules import Rules
from .schemas import CategoryView, FindingDecisionRequest, FindingView, RuleView, TicketFindings
from .service import FindingService

__all__ = ["FindingController", "category_views", "rule_views"]

TicketId = Annotated[int, Parameter(ge=1, le=2**31 - 1)]


def rule_views(rules: Rules) -> list[RuleView]:
    """The rules in force, in their order."""
    return [
        RuleView(
            id=rule.id,
            severity=rule.severity,
            title=rule.title,
            description=rule.description,
            category=rule.category,
            urgency=rule.urgency,
        )
        for rule in rules.rules
    ]


def category_views(categories: Categories) -> list[CategoryView]:
    """Every category and subcategory a ticket may have."""
    return [CategoryView(name=name, title=categories.title(name)) for name in categories.names()]


class FindingController(Controller):
    """What the rules find in tickets' snapshots, and what technicians decide of it."""

    path = "/api/v1"
    tags = ["findings"]  # noqa: RUF012 - Litestar's API

    @get(
        "/tickets/{ticket_id:int}/findings",
        guards=[requires(Scope.TICKETS_READ)],
        responses=errors(400, 404),
    )
    async def ticket_findings(
        self, identity: ApiIdentity, findings: FindingService, ticket_id: TicketId
    ) -> TicketFindings:
        """The findings of the newest snapshot attached to the ticket."""
        return await findings.for_ticket(ticket_id)

    @post(
        "/tickets/{ticket_id:int}/findings/decisions",
        guards=[requires(Scope.TICKETS_WRITE)],
        responses=errors(400, 404),
    )
    async def decide(
        self,
        identity: ApiIdentity,
        findings: FindingService,
        ticket_id: TicketId,
        data: FindingDecisionRequest,
    ) -> FindingView:
        """Accept (and apply its suggested category and urgency) or dismiss a finding
        (201); recorded on the ticket's timeline."""
        return await findings.decide(ticket_id, data.finding, data.decision, actor=identity.actor)

    @get("/findings/rules", guards=[requires(Scope.TICKETS_READ)], responses=errors(400))
    async def rules(self, identity: ApiIdentity, findings: FindingService) -> list[RuleView]:
        """The rules in force: the shipped ones and the admin's."""
        return rule_views(findings.rules)

    @get("/categories", guards=[requires(Scope.TICKETS_READ)], responses=errors(400))
    async def categories(self, identity: ApiIdentity, categories: Categories) -> list[CategoryView]:
        """What a ticket's category may be."""
        return category_views(categories)
