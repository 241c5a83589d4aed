"""Attacks on a running console, as a technician with a script or a stranger would try
them: each a probe that once worked (issue 12), bounded in time and size."""
