"""CLLMH site appliance."""

__version__ = "0.1.0"
