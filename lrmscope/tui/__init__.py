"""The Textual apps, the only package that may import textual: chat/, compare/ and review/, built
on streaming.py (the worker and inbox a live view shares), widgets/ and styles.py."""
