"""Supervision (督查): what supervisors chase and the figures they read. Re-exports only."""

from hub.supervision.alerts import Alert, warnings

__all__ = ["Alert", "warnings"]
