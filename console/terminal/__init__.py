"""Terminals on devices for tickets: relayed keystrokes and output, transcripts."""
