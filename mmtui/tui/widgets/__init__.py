"""Widgets of the mmtui app."""
