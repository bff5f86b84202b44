"""Tracking: per-recipient signed tokens and the tracked links, pixel and unsubscribe of a message."""
