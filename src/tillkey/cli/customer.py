"""`tillkey customer ...`: customer accounts."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import asdict
from typing import Annotated

import typer

from tillkey.cli.options import JsonOpt, PasswordOpt, PasswordStdinOpt, read_password
from tillkey.cli.output import emit
from tillkey.cli.runner import fail, run
from tillkey.principal import UserType
from tillkey.runtime import Tillkey

commands = typer.Typer(no_args_is_help=True, help="Customer accounts.")


@commands.command("create")
def customer_create(
    email: Annotated[str, typer.Option()],
    first_name: Annotated[str, typer.Option()],
    last_name: Annotated[str, typer.Option()],
    password: PasswordOpt = None,
    password_stdin: PasswordStdinOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a customer account. The password is asked for unless given with --password-stdin."""
    password = read_password(password, password_stdin)
    customer = run(
        lambda tk: tk.services.accounts.create_customer(
            email=email, password=password, firstname=first_name, lastname=last_name
        )
    )
    emit(asdict(customer), as_json, "customer created")


def customer_id(tk: Tillkey, email: str) -> Awaitable[int]:
    from tillkey.store import accounts as repo

    async def go() -> int:
        async with tk.db.session() as s:
            customer = await repo.customer_by_email(s, email)
        if customer is None:
            fail(f"there is no customer with email {email!r}")
        return customer.id

    return go()


@commands.command("deactivate")
def customer_deactivate(email: str) -> None:
    """Deactivate a customer; their tokens are revoked at once."""

    async def go(tk: Tillkey) -> None:
        await tk.services.accounts.set_customer_active(await customer_id(tk, email), False)

    run(go)
    typer.echo(f"customer {email} deactivated; their tokens are revoked")


@commands.command("delete")
def customer_delete(email: str) -> None:
    """Delete a customer; their tokens are revoked at once."""

    async def go(tk: Tillkey) -> None:
        await tk.services.accounts.delete_customer(await customer_id(tk, email))

    run(go)
    typer.echo(f"customer {email} deleted")


@commands.command("unlock")
def customer_unlock(email: str) -> None:
    """Lift a customer's account lock and login throttle."""

    async def go(tk: Tillkey) -> None:
        await tk.services.sign_in.unlock(UserType.CUSTOMER, await customer_id(tk, email), email)

    run(go)
    typer.echo(f"customer {email} unlocked")


@commands.command("revoke-tokens")
def customer_revoke_tokens(email: str) -> None:
    """Sign a customer out everywhere (Magento's "Force sign-in"), registration tokens of the
    email's Medusa identities included (even before the customer exists)."""
    from tillkey.store import accounts as repo

    async def go(tk: Tillkey) -> None:
        async with tk.db.session() as s:
            customer = await repo.customer_by_email(s, email)
        customer_id = None if customer is None else customer.id
        hit = await tk.services.accounts.revoke_tokens(UserType.CUSTOMER, customer_id, email=email)
        if customer is None and not hit:
            fail(f"there is no customer with email {email!r}")

    run(go)
    typer.echo(f"tokens of customer {email} revoked")
