"""Subcommands of the `contextrast` CLI (see contextrast/cli.py for the contract)."""
