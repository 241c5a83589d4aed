"""The audit log: security-relevant events, each chained to the one before."""
