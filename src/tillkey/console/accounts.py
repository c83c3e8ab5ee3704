"""Console pages for accounts: admin users, roles (with the resource tree) and customers.
Every change goes through the accounts service, exactly as the CLI's."""

from __future__ import annotations

from starlette.responses import Response

from tillkey.access.tree import ADMIN_SELF
from tillkey.accounts.signin import Attempt
from tillkey.console import listing
from tillkey.console.dashboard import trail
from tillkey.console.factors import factors_of, recent_sign_ins
from tillkey.console.idp import to_provider
from tillkey.console.routing import Console, ConsolePages
from tillkey.console.sign_in_session import cookie_name, delete_cookie
from tillkey.errors import InvalidRequest, NotFound
from tillkey.parsing import ascii_int
from tillkey.principal import UserType
from tillkey.security.proxy import client_ip
from tillkey.store import accounts as repo
from tillkey.store.accounts import Role

pages = ConsolePages()
USERS = "Magento_User::acl_users"
ROLES = "Magento_User::acl_roles"
TFA = "Magento_TwoFactorAuth::tfa"
CUSTOMERS = "Magento_Customer::manage"
INVALIDATE = "Magento_Customer::invalidate_tokens"


def _id(c: Console, name: str = "id") -> int:
    raw = str(c.request.path_params.get(name, ""))
    value = ascii_int(raw, 12)
    if value is None:
        raise NotFound("Not found.")
    return value


# --- admin users --------------------------------------------------------------------------------


@pages.route("GET", "/console/admins", resources=[USERS], summary="Admin users")
async def admins_page(c: Console) -> Response:
    async with c.tk.db.session() as s:
        admins = await repo.list_admins(s)
        roles = await repo.list_roles(s)
    names = {r.id: r.name for r in roles}
    totp = c.tk.services.totp
    rows = []
    shown, pager, q = listing.paginate(
        c.request, admins, lambda a: f"{a.username} {a.email} {a.firstname} {a.lastname} {names.get(a.role_id or 0)}"
    )
    for a in shown:
        status = await totp.status(a.id)
        rows.append(
            {
                "id": a.id,
                "username": a.username,
                "email": a.email,
                "role": names.get(a.role_id or 0, "—"),
                "active": a.is_active,
                "tfa": status.active,
                "self": a.id == c.session.user_id,
            }
        )
    return c.render(
        "admins.html",
        "Admin users",
        admins=rows,
        roles=[r.name for r in roles],
        can_tfa=c.allowed(TFA),
        pager=pager,
        q=q,
    )


@pages.route("POST", "/console/admins", resources=[USERS], summary="Create an admin user", delegates="admin")
async def create_admin(c: Console) -> Response:
    await c.tk.services.accounts.create_admin(
        c.principal,
        username=c.field("username"),
        email=c.field("email"),
        password=c.form.get("password", [""])[0],
        role=c.field("role") or None,
        firstname=c.field("firstname"),
        lastname=c.field("lastname"),
    )
    return c.redirect("/console/admins")


def _deactivating(c: Console) -> str | None:
    return "Deactivate this admin? They are signed out everywhere." if c.field("active") != "1" else None


def _password(c: Console, name: str = "password") -> str:
    """A password field as typed (never stripped), and its confirmation when the form has one."""
    value = c.form.get(name, [""])[0]
    confirm = c.form.get(name + "_confirm")
    if confirm is not None and confirm[0] != value:
        raise InvalidRequest("The two passwords differ.")
    return value


_ADMIN_DONE = {
    "password": "The password was reset; the admin was signed out everywhere.",
    "factors": "The second factor was reset; the admin was signed out everywhere and sets one up again.",
}


@pages.route("GET", "/console/admins/{id}", resources=[USERS], summary="An admin user")
async def admin_page(c: Console) -> Response:
    admin_id = _id(c)
    async with c.tk.db.session() as s:
        admin = await repo.admin_by_id(s, admin_id)
        role = await repo.role_by_id(s, admin.role_id) if admin is not None and admin.role_id is not None else None
    if admin is None:
        raise NotFound("The admin user doesn't exist.")
    status = await c.tk.services.totp.status(admin.id)
    done = _ADMIN_DONE.get(c.request.query_params.get("done", ""))
    return c.render(
        "admin.html",
        f"Admin: {admin.username}",
        notice=done,
        admin=admin,
        role=role,
        can_roles=c.allowed(ROLES),
        tfa=status.active,
        own=admin.id == c.session.user_id,
        trail=await trail(c, UserType.ADMIN, admin.id),
        factors=await factors_of(c, admin.id),
        can_tfa=c.allowed(TFA),
    )


@pages.route(
    "POST",
    "/console/admins/{id}/password",
    resources=[USERS],
    summary="Reset another admin's password",
    delegates="password_reset",
)
async def admin_password_reset(c: Console) -> Response:
    admin = await c.tk.services.accounts.reset_admin_password(c.principal, _id(c), _password(c))
    return c.redirect(f"/console/admins/{admin.id}?done=password")


@pages.route(
    "POST",
    "/console/admins/{id}/delete",
    resources=[USERS],
    summary="Delete an admin user",
    confirm="Delete this admin user? This cannot be undone.",
    page="/console/admins/{id}",
)
async def admin_delete(c: Console) -> Response:
    await c.tk.services.accounts.delete_admin(c.principal, _id(c))
    return c.redirect("/console/admins")


_ACCOUNT_DONE = {"linked": "Your identity provider is linked.", "unlinked": "The identity provider was removed."}


@pages.route("GET", "/console/account", resources=[ADMIN_SELF], summary="My account")
async def account_page(c: Console) -> Response:
    federation = c.tk.services.federation
    linked = await c.tk.services.linking.identities(UserType.ADMIN, c.session.user_id)
    identities = [(i.id, p.display_name, i.email or i.subject) for i, p in linked]
    notice = _ACCOUNT_DONE.get(c.request.query_params.get("done", ""))
    return c.render(
        "account.html",
        "My account",
        notice=notice,
        identities=identities,
        providers=await federation.enabled("admin"),
        factors=await factors_of(c, c.session.user_id),
        sign_ins=await recent_sign_ins(c, c.session.user_id),
    )


@pages.route(
    "POST", "/console/account/identities", resources=[ADMIN_SELF], summary="Link an identity provider to my account"
)
async def account_link(c: Console) -> Response:
    """Signed in (and through the form's CSRF check): off to the provider; its callback links the
    identity it asserts to this admin (federation/linking.py link_to), whatever its email says."""
    federation = c.tk.services.federation
    provider = await federation.provider(c.field("provider"), "admin")
    where = Attempt(client_ip(c.request.scope), c.request.headers.get("user-agent", "")[:255])
    context = {"link_admin": str(c.session.user_id), "next": "/console/account"}
    return to_provider(c.request, await federation.start(provider, where, context), page=True)


@pages.route(
    "POST",
    "/console/account/identities/{id}/remove",
    resources=[ADMIN_SELF],
    summary="Remove a linked identity from my account",
    page="/console/account",
    confirm="Remove this identity provider from your account? It no longer signs you in.",
)
async def account_unlink(c: Console) -> Response:
    """Only this admin's own identities (another's is not found); the last way to sign in is
    refused (federation/linking.py unlink)."""
    await c.tk.services.linking.unlink(UserType.ADMIN, c.session.user_id, _id(c))
    return c.redirect("/console/account?done=unlinked")


@pages.route("POST", "/console/account/password", resources=[ADMIN_SELF], summary="Change my password")
async def account_password(c: Console) -> Response:
    current = c.form.get("current_password", [""])[0]
    await c.tk.services.own_password.change(c.session.user_id, current, _password(c), ip=client_ip(c.request.scope))
    # Every session of the account ended with the change, this one too: sign in with the new one.
    response = c.redirect("/console/login?reason=password")
    delete_cookie(response, c.request, cookie_name(c.request))
    return response


@pages.route(
    "POST",
    "/console/admins/{id}/active",
    resources=[USERS],
    summary="Activate or deactivate an admin",
    delegates="admin_activation",
    confirm=_deactivating,
    page="/console/admins",
)
async def admin_active(c: Console) -> Response:
    await c.tk.services.accounts.set_admin_active(c.principal, _id(c), c.field("active") == "1")
    return c.redirect("/console/admins")


@pages.route(
    "POST",
    "/console/admins/{id}/role",
    resources=[USERS],
    summary="Assign a role to an admin",
    delegates="role_assignment",
    page="/console/admins",
)
async def admin_role(c: Console) -> Response:
    async with c.tk.db.session() as s:
        admin = await repo.admin_by_id(s, _id(c))
    if admin is None:
        raise NotFound("The admin user doesn't exist.")
    await c.tk.services.accounts.assign_role(c.principal, admin.username, c.field("role"))
    return c.redirect("/console/admins")


@pages.route(
    "POST",
    "/console/admins/{id}/2fa-reset",
    resources=[USERS, TFA],
    summary="Reset an admin's 2FA",
    delegates="second_factor_reset",
    page="/console/admins",
    confirm="Reset this admin's two-factor authentication? They set it up again at their next sign-in.",
)
async def admin_tfa_reset(c: Console) -> Response:
    await c.tk.services.totp.reset(c.principal, _id(c))  # never one's own: the service refuses it
    return c.redirect("/console/admins")


@pages.route(
    "POST",
    "/console/admins/{id}/factors-reset",
    resources=[USERS, TFA],
    summary="Reset an admin's second factor",
    delegates="second_factor_reset",
    page="/console/admins/{id}",
    confirm="Reset this admin's second factor (authenticator app, recovery codes and passkeys)? They are signed "
    "out everywhere and set one up again at their next sign-in.",
)
async def admin_factors_reset(c: Console) -> Response:
    """From the admin's detail page: the same reset as the list's (TOTP, recovery codes, passkeys,
    tokens), refused in place for one's own or a peer the grant does not cover."""
    admin_id = _id(c)
    await c.tk.services.totp.reset(c.principal, admin_id)
    return c.redirect(f"/console/admins/{admin_id}?done=factors")


# --- roles --------------------------------------------------------------------------------------


async def _role(c: Console) -> Role:
    role_id = _id(c)
    async with c.tk.db.session() as s:
        found = next((r for r in await repo.list_roles(s) if r.id == role_id), None)
    if found is None:
        raise NotFound("There is no such role.")
    return found


@pages.route("GET", "/console/roles", resources=[ROLES], summary="Roles")
async def roles_page(c: Console) -> Response:
    async with c.tk.db.session() as s:
        roles = await repo.list_roles(s)
    shown, pager, q = listing.paginate(c.request, roles, lambda r: f"{r.name} {' '.join(r.resources)}")
    return c.render("roles.html", "Roles", roles=shown, tree=list(c.tk.tree.walk()), checked=set(), pager=pager, q=q)


@pages.route("POST", "/console/roles", resources=[ROLES], summary="Create a role", delegates="role")
async def create_role(c: Console) -> Response:
    role = await c.tk.services.accounts.create_role(c.principal, c.field("name"), c.fields("resource"))
    return c.redirect(f"/console/roles/{role.id}")


@pages.route("GET", "/console/roles/{id}", resources=[ROLES], summary="A role and its resources")
async def role_page(c: Console) -> Response:
    role = await _role(c)
    return c.render(
        "role.html", f"Role: {role.name}", role=role, tree=list(c.tk.tree.walk()), checked=set(role.resources)
    )


@pages.route(
    "POST", "/console/roles/{id}", resources=[ROLES], summary="Change a role's resources", delegates="role_grant"
)
async def update_role(c: Console) -> Response:
    role = await _role(c)
    await c.tk.services.accounts.set_role_resources(c.principal, role.name, c.fields("resource"))
    return c.redirect(f"/console/roles/{role.id}")


@pages.route("POST", "/console/roles/{id}/rename", resources=[ROLES], summary="Rename a role")
async def rename_role(c: Console) -> Response:
    role = await _role(c)
    await c.tk.services.accounts.rename_role(c.principal, role.name, c.field("name"))
    return c.redirect(f"/console/roles/{role.id}")


@pages.route(
    "POST",
    "/console/roles/{id}/delete",
    resources=[ROLES],
    summary="Delete a role",
    confirm="Delete this role? This cannot be undone.",
)
async def delete_role(c: Console) -> Response:
    role = await _role(c)
    await c.tk.services.accounts.delete_role(c.principal, role.name)
    return c.redirect("/console/roles")


# --- customers ----------------------------------------------------------------------------------


@pages.route("GET", "/console/customers", resources=[CUSTOMERS], summary="Customers")
async def customers_page(c: Console) -> Response:
    q = listing.query(c.request)
    page = listing.page_number(c.request)
    async with c.tk.db.session() as s:
        found = await repo.list_customers(
            s, q=q or None, limit=listing.PER_PAGE + 1, offset=(page - 1) * listing.PER_PAGE
        )
    pager = listing.pager(c.request, page, more=len(found) > listing.PER_PAGE)
    return c.render(
        "customers.html",
        "Customers",
        customers=found[: listing.PER_PAGE],
        q=q,
        can_sign_out=c.allowed(INVALIDATE),
        pager=pager,
    )


@pages.route("GET", "/console/customers/{id}", resources=[CUSTOMERS], summary="A customer")
async def customer_page(c: Console) -> Response:
    customer_id = _id(c)
    async with c.tk.db.session() as s:
        customer = await repo.customer_by_id(s, customer_id)
    if customer is None:
        raise NotFound("The customer doesn't exist.")
    return c.render(
        "customer.html",
        f"Customer: {customer.email}",
        customer=customer,
        can_sign_out=c.allowed(INVALIDATE),
        trail=await trail(c, UserType.CUSTOMER, customer.id),
    )


@pages.route(
    "POST",
    "/console/customers/{id}/sign-out",
    resources=[CUSTOMERS, INVALIDATE],
    summary="Sign a customer out everywhere",
    confirm="Sign this customer out everywhere?",
)
async def customer_sign_out(c: Console) -> Response:
    customer_id = _id(c)
    async with c.tk.db.session() as s:
        if await repo.customer_by_id(s, customer_id) is None:
            raise NotFound("The customer doesn't exist.")
    await c.tk.services.accounts.sign_out_everywhere(
        UserType.CUSTOMER, customer_id, reason="signed out by an admin", by=c.by
    )
    return c.redirect(f"/console/customers/{customer_id}")
