"""Screen sessions: the relay between agent and viewers, guidance and control,
recordings."""
