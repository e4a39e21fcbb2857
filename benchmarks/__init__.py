"""Benchmarks of the store against breezy's own servers (``python -m benchmarks``)."""
