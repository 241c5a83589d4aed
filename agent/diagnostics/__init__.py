"""Diagnostics snapshots of this machine."""
