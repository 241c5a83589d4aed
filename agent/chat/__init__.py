"""The user's chat with the help desk: the ``[chat]`` policy, the daemon's service and
the chat window (a process of its own that never holds the device key)."""
