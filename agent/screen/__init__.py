"""Screen sessions: capture, encoding, guidance overlay and remote control.

Nothing here is imported by the idle daemon: numpy, PyAV, pynput and Xlib load only
when a screen session starts.
"""
