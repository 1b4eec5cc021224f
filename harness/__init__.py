"""HAET harness: grade efficient-training submissions under a hard time budget."""

__version__ = "0.1.0"
