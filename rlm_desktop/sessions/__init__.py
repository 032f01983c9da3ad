"""Saved investigations: store, replay and export (Qt-free)."""
