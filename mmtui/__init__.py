"""mmtui: local search for product catalogs that understands words and pictures together."""

__version__ = "0.1.0"
