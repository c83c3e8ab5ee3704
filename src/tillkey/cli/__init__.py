"""`tillkey` command line (Typer), one module per noun (`tillkey admin ...` is admin.py); root.py
assembles them. Non-interactive, exit 0 on success, one-line errors otherwise; `--json` prints
the created object (with any secret shown only once) as one JSON object."""

from tillkey.cli.root import app, main

__all__ = ["app", "main"]
