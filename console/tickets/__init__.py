"""Tickets: their lifecycle (statuses, transitions, priority, SLA), storage and routes."""
