"""Crash recovery: checkpoints in PostgreSQL, a watcher that re-dispatches calls whose agent
died, and the resume path of the replacement job (docs/recovery.md)."""
