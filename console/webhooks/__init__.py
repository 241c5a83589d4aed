"""Outbound webhooks (Standard Webhooks) to ticket systems.

Theory of operation::

    repository transaction ── events ──> WebhookRepository.stage (before commit):
                                          one outbox row per message and endpoint
    commit ──> bus ──> WebhookDispatcher wakes ──> claim (lease) ──> POST, signed
                                                   └─> delivery log, retries, 410

* ``catalog.py``: the public event types (``ticket.created``...) and their
  versioned JSON payloads, made from the console's domain events.
* ``signing.py``: ``whsec_`` secrets and ``webhook-signature`` (HMAC-SHA256).
* ``repository.py``: endpoints, the outbox stager, claims, the delivery log.
* ``schedule.py``: exponential back-off with jitter, for about three days.
* ``addresses.py``: the SSRF guard, at add time and at every send.
* ``dispatcher.py``: the sending loop; ``routes.py``, ``cli.py``: management.

A folder of its own rather than a shared ``integrations/``: the two-way
connectors and e-mail intake (issue 14's other parts) own other tables and rules;
what they may share with webhooks is the ``Database`` stager hook, not this code.
"""
