"""A ticket's timeline: every step taken on it, typed, in order."""
