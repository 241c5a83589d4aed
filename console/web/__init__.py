"""The technicians' web console: server-rendered pages (Jinja, htmx), sessions, CSRF.

``headers``   what every response tells browsers (strict CSP, HSTS, ...)
``settings``  the ``[web]`` table: sessions' time-outs, the second-factor policy
``sessions``  the session cookie, the signed-in user, the pages' guards
``csrf``      the synchronizer token and the same-origin check of unsafe requests
``limiter``   sign-in failures counted per account and per address
``layout``    templates, the base layout's navigation, flash messages, error pages
``assets``    our static files and the browser libraries from npm (``vendor/``)
``live``      server-sent events from the event bus, per user and bounded
``signin``, ``account``: the sign-in pages and the user's own sessions and factors
``webauthn``  the console as a WebAuthn relying party (``static/webauthn.js``)
``forms``     the pages' forms read with bounds
``routes``    the web router, built from the pages of each capability

How a capability adds a page is told in ARCHITECTURE.md ("Web pages").
"""

from __future__ import annotations

from .headers import CONTENT_SECURITY_POLICY, HSTS, schema_pages, security_headers

__all__ = ["CONTENT_SECURITY_POLICY", "HSTS", "schema_pages", "security_headers"]
