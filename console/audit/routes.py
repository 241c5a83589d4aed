"""The audit log's API: ``/api/v1/audit``."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import Parameter

from deskside.console.api import MAX_ID, errors
from deskside.console.auth.guards import requires
from deskside.console.auth.identity import Scope

from .chain import AuditVerification
from .repository import AuditRepository
from .schemas import AuditView

__all__ = ["AuditController"]

Limit = Annotated[int, Parameter(ge=1, le=500, description="At most this many results")]


class AuditController(Controller):
    """The audit log and its chain."""

    path = "/api/v1"
    tags = ["audit"]  # noqa: RUF012 - Litestar's API

    @get("/audit", guards=[requires(Scope.AUDIT_READ)], responses=errors(400))
    async def audit_log(
        self,
        audit: AuditRepository,
        limit: Limit = 100,
        before: Annotated[int | None, Parameter(ge=1, le=MAX_ID)] = None,
    ) -> list[AuditView]:
        """The audit log, newest first."""
        return await audit.log(limit=limit, before=before)

    @get("/audit/verify", guards=[requires(Scope.AUDIT_READ)], responses=errors())
    async def verify_audit(
        self,
        audit: AuditRepository,
    ) -> AuditVerification:
        """Check the audit log's hash chain."""
        return await audit.verify()
