"""Reusable fixtures for tests that run real processes: a LiveKit server, the worker, callers."""
