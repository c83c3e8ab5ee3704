"""`tillkey demo seed`: the demo catalog, customers and orders."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from tillkey.cli.options import JsonOpt
from tillkey.cli.output import out
from tillkey.cli.runner import run

commands = typer.Typer(no_args_is_help=True, help="Demo data.")


@commands.command("seed")
def demo_seed(
    customer_password: Annotated[
        str | None, typer.Option(help="Password for the demo customers; random (and printed) if omitted.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Load a small catalog, stock, two customers with orders; print what was created."""
    from tillkey.storeapi.seed import seed

    created = run(lambda tk: seed(tk, customer_password))
    if as_json:
        sys.stdout.write(json.dumps(created) + "\n")
        return
    if not any(created.values()):
        out.print("demo data is already there; nothing to add")
        return
    table = Table("sku", "name", "price", "qty", title="products")
    for p in created["products"]:
        table.add_row(p["sku"], p["name"], str(p["price"]), str(p["qty"]))
    out.print(table)
    table = Table("id", "email", "password (shown once)", title="customers")
    for c in created["customers"]:
        table.add_row(str(c["id"]), c["email"], c["password"])
    out.print(table)
    table = Table("entity_id", "increment_id", "customer", "grand_total", title="orders")
    for o in created["orders"]:
        table.add_row(str(o["entity_id"]), o["increment_id"], o["customer"], str(o["grand_total"]))
    out.print(table)
