"""Subcommands of the `dispatcher` command, one module per domain."""
