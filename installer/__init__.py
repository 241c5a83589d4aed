"""deskside.installer: installs the agent as a service (arrives with its own issue)."""
