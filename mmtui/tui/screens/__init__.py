"""Screens of the mmtui app."""
