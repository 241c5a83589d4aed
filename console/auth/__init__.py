"""Accounts and authorization: technicians, API tokens and their scopes, and who may
act on a device (``access.py``), decided in one place."""
