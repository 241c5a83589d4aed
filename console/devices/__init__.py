"""Enrolled devices: enrollment, presence and heartbeats, diagnostics snapshots."""
