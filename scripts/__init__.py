"""Operator scripts run from the repository root (python scripts/NAME.py)."""
