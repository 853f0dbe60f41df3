"""Watching it live: the figures the operator page, the terminal view and /metrics share."""
