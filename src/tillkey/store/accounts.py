"""Repository for admins, customers and roles. Returns frozen records, never ORM rows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tillkey import names
from tillkey.errors import Conflict, NotFound
from tillkey.store.models import AdminRow, CustomerRow, RoleResourceRow, RoleRow


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class Admin:
    id: int
    username: str
    email: str
    firstname: str
    lastname: str
    password_hash: str
    is_active: bool
    role_id: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Customer:
    id: int
    email: str
    firstname: str
    lastname: str
    password_hash: str
    is_active: bool
    website_id: int
    store_id: int
    group_id: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Role:
    id: int
    name: str
    builtin: bool
    resources: tuple[str, ...]


def _admin(r: AdminRow) -> Admin:
    return Admin(
        r.id,
        r.username,
        r.email,
        r.firstname,
        r.lastname,
        r.password_hash,
        r.is_active,
        r.role_id,
        r.created_at,
    )


def _customer(r: CustomerRow) -> Customer:
    return Customer(
        r.id,
        r.email,
        r.firstname,
        r.lastname,
        r.password_hash,
        r.is_active,
        r.website_id,
        r.store_id,
        r.group_id,
        r.created_at,
        r.updated_at,
    )


def username_key(username: str) -> str:
    """The key a sign-in name looks up (names.lookup_key: a non-canonical spelling finds nobody)."""
    return names.lookup_key(username)


async def _refuse_look_alike(s: AsyncSession, row: Any, key: Any, name: names.Name, what: str) -> None:
    """Conflict when another account's name looks like this one (the same name is the unique
    key's own conflict, reported as such)."""
    same_look = select(row.id).where(row.name_skeleton == name.skeleton, key != name.key).limit(1)
    if await s.scalar(same_look) is not None:
        raise Conflict(f"The {what} {name.shown!r} looks like that of an existing account; choose another.")


# --- admins -----------------------------------------------------------------------------------


async def create_admin(
    s: AsyncSession,
    *,
    username: str,
    email: str,
    password_hash: str,
    role_id: int | None,
    firstname: str = "",
    lastname: str = "",
) -> Admin:
    name = names.admin_username(username)
    await _refuse_look_alike(s, AdminRow, AdminRow.username_key, name, "username")
    now = utcnow()
    row = AdminRow(
        username=name.shown,
        username_key=name.key,
        name_skeleton=name.skeleton,
        email=names.email(email).shown,
        firstname=firstname,
        lastname=lastname,
        password_hash=password_hash,
        is_active=True,
        role_id=role_id,
        created_at=now,
        updated_at=now,
    )
    s.add(row)
    try:
        await s.flush()
    except IntegrityError as exc:
        raise Conflict(f"An admin with the username {name.shown!r} already exists.") from exc
    return _admin(row)


async def admin_by_username(s: AsyncSession, username: str) -> Admin | None:
    row = await s.scalar(select(AdminRow).where(AdminRow.username_key == username_key(username)))
    return _admin(row) if row else None


async def admin_by_email(s: AsyncSession, email: str) -> Admin | None:
    """The one admin with this email (case-insensitive); None if none, or several share it (admin
    emails are not unique, so an email is a login name only when it names one account)."""
    key = username_key(email)
    rows = list(await s.scalars(select(AdminRow).where(func.lower(AdminRow.email) == key).limit(2)))
    return _admin(rows[0]) if len(rows) == 1 else None


async def admin_by_id(s: AsyncSession, admin_id: int) -> Admin | None:
    row = await s.get(AdminRow, admin_id)
    return _admin(row) if row else None


async def list_admins(s: AsyncSession) -> list[Admin]:
    return [_admin(r) for r in await s.scalars(select(AdminRow).order_by(AdminRow.id))]


async def admin_count(s: AsyncSession) -> int:
    return int(await s.scalar(select(func.count()).select_from(AdminRow)) or 0)


async def set_admin_active(s: AsyncSession, admin_id: int, active: bool) -> Admin:
    row = await s.get(AdminRow, admin_id)
    if row is None:
        raise NotFound("The admin user doesn't exist.")
    row.is_active = active
    row.updated_at = utcnow()
    await s.flush()
    return _admin(row)


async def set_admin_role(s: AsyncSession, admin_id: int, role_id: int | None) -> None:
    row = await s.get(AdminRow, admin_id)
    if row is None:
        raise NotFound("The admin user doesn't exist.")
    row.role_id = role_id
    row.updated_at = utcnow()


async def set_admin_password_hash(s: AsyncSession, admin_id: int, password_hash: str) -> None:
    row = await s.get(AdminRow, admin_id)
    if row is not None:
        row.password_hash = password_hash


async def delete_admin(s: AsyncSession, admin_id: int) -> None:
    await s.execute(delete(AdminRow).where(AdminRow.id == admin_id))


# --- customers --------------------------------------------------------------------------------


async def create_customer(
    s: AsyncSession, *, email: str, firstname: str, lastname: str, password_hash: str
) -> Customer:
    name = names.email(email)
    if names.skeleton_matters(name, is_email=True):
        await _refuse_look_alike(s, CustomerRow, CustomerRow.email_key, name, "email address")
    now = utcnow()
    row = CustomerRow(
        email=name.shown,
        email_key=name.key,
        name_skeleton=name.skeleton,
        firstname=firstname.strip(),
        lastname=lastname.strip(),
        password_hash=password_hash,
        is_active=True,
        website_id=1,
        store_id=1,
        group_id=1,
        created_at=now,
        updated_at=now,
    )
    s.add(row)
    try:
        await s.flush()
    except IntegrityError as exc:
        raise Conflict("A customer with the same email address already exists in an associated website.") from exc
    return _customer(row)


async def customer_by_email(s: AsyncSession, email: str) -> Customer | None:
    row = await s.scalar(select(CustomerRow).where(CustomerRow.email_key == username_key(email)))
    return _customer(row) if row else None


async def customer_by_id(s: AsyncSession, customer_id: int) -> Customer | None:
    row = await s.get(CustomerRow, customer_id)
    return _customer(row) if row else None


async def accounts_by_ids(s: AsyncSession, admin: bool, ids: Iterable[int]) -> dict[int, Admin | Customer]:
    """Admins (or customers) by id, a chunk of ids per query (a directory sync reads thousands)."""
    wanted = sorted(set(ids))
    row_type: Any = AdminRow if admin else CustomerRow
    convert: Any = _admin if admin else _customer
    found: dict[int, Admin | Customer] = {}
    for start in range(0, len(wanted), 500):
        rows = await s.scalars(select(row_type).where(row_type.id.in_(wanted[start : start + 500])))
        found |= {r.id: convert(r) for r in rows}
    return found


async def set_customer_active(s: AsyncSession, customer_id: int, active: bool) -> Customer:
    row = await s.get(CustomerRow, customer_id)
    if row is None:
        raise NotFound(
            "No such entity with %fieldName = %fieldValue",
            parameters={"fieldName": "customerId", "fieldValue": customer_id},
        )
    row.is_active = active
    row.updated_at = utcnow()
    await s.flush()
    return _customer(row)


async def set_customer_password_hash(s: AsyncSession, customer_id: int, password_hash: str) -> None:
    row = await s.get(CustomerRow, customer_id)
    if row is not None:
        row.password_hash = password_hash


async def replace_password_hash(s: AsyncSession, *, admin: bool, user_id: int, old: str, new: str) -> bool:
    """Swap a password hash only if it is still `old` (a conditional update): two sign-ins that
    upgrade the same imported hash at once, or a password change in between, cannot be overwritten
    by a stale upgrade. True if this call replaced it."""
    row: type[AdminRow] | type[CustomerRow] = AdminRow if admin else CustomerRow
    result = await s.execute(update(row).where(row.id == user_id, row.password_hash == old).values(password_hash=new))
    return bool(getattr(result, "rowcount", 0) == 1)


async def delete_customer(s: AsyncSession, customer_id: int) -> None:
    await s.execute(delete(CustomerRow).where(CustomerRow.id == customer_id))


# --- roles ------------------------------------------------------------------------------------


async def _role(s: AsyncSession, row: RoleRow) -> Role:
    res = await s.scalars(
        select(RoleResourceRow.resource_id)
        .where(RoleResourceRow.role_id == row.id)
        .order_by(RoleResourceRow.resource_id)
    )
    return Role(row.id, row.name, row.builtin, tuple(res))


async def create_role(s: AsyncSession, name: str, resources: Iterable[str] = ()) -> Role:
    row = RoleRow(name=name.strip(), builtin=False, created_at=utcnow())
    s.add(row)
    try:
        await s.flush()
    except IntegrityError as exc:
        raise Conflict(f"A role named {name!r} already exists.") from exc
    for rid in sorted(set(resources)):
        s.add(RoleResourceRow(role_id=row.id, resource_id=rid))
    await s.flush()
    return await _role(s, row)


async def role_by_name(s: AsyncSession, name: str) -> Role | None:
    row = await s.scalar(select(RoleRow).where(RoleRow.name == name.strip()))
    return await _role(s, row) if row else None


async def role_by_id(s: AsyncSession, role_id: int) -> Role | None:
    row = await s.get(RoleRow, role_id)
    return await _role(s, row) if row else None


async def list_roles(s: AsyncSession) -> list[Role]:
    return [await _role(s, r) for r in await s.scalars(select(RoleRow).order_by(RoleRow.id))]


async def grant(s: AsyncSession, role_id: int, resources: Iterable[str]) -> None:
    have = set(await s.scalars(select(RoleResourceRow.resource_id).where(RoleResourceRow.role_id == role_id)))
    for rid in sorted(set(resources) - have):
        s.add(RoleResourceRow(role_id=role_id, resource_id=rid))
    await s.flush()


async def revoke_grant(s: AsyncSession, role_id: int, resources: Iterable[str]) -> None:
    await s.execute(
        delete(RoleResourceRow).where(
            RoleResourceRow.role_id == role_id, RoleResourceRow.resource_id.in_(list(resources))
        )
    )


async def admin_grants(s: AsyncSession) -> dict[int, tuple[str, ...]]:
    """Every active admin's granted resource ids (unexpanded): the access check's source of truth."""
    rows = await s.execute(
        select(AdminRow.id, RoleResourceRow.resource_id)
        .join(RoleResourceRow, RoleResourceRow.role_id == AdminRow.role_id)
        .where(AdminRow.is_active.is_(True))
    )
    out: dict[int, list[str]] = {}
    for admin_id, rid in rows:
        out.setdefault(admin_id, []).append(rid)
    return {k: tuple(v) for k, v in out.items()}


async def list_customers(s: AsyncSession, *, q: str | None = None, limit: int = 100, offset: int = 0) -> list[Customer]:
    """Customers, newest first; `q` matches the start of the email or either name (console search)."""
    stmt = select(CustomerRow)
    if q:
        text = q.strip().casefold().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = text + "%"
        stmt = stmt.where(
            CustomerRow.email_key.like(pattern, escape="\\")
            | func.lower(CustomerRow.firstname).like(pattern, escape="\\")
            | func.lower(CustomerRow.lastname).like(pattern, escape="\\")
        )
    rows = await s.scalars(stmt.order_by(CustomerRow.id.desc()).limit(limit).offset(offset))
    return [_customer(r) for r in rows]


async def rename_role(s: AsyncSession, role_id: int, name: str) -> None:
    row = await s.get(RoleRow, role_id)
    if row is None:
        raise NotFound("The role doesn't exist.")
    row.name = name.strip()
    try:
        await s.flush()
    except IntegrityError as exc:
        raise Conflict(f"A role named {name!r} already exists.") from exc


async def admins_with_role(s: AsyncSession, role_id: int) -> list[str]:
    return list(await s.scalars(select(AdminRow.username).where(AdminRow.role_id == role_id).order_by(AdminRow.id)))


async def delete_role(s: AsyncSession, role_id: int) -> None:
    await s.execute(delete(RoleResourceRow).where(RoleResourceRow.role_id == role_id))
    await s.execute(delete(RoleRow).where(RoleRow.id == role_id))


# --- bulk import (migrate/run.py) ----------------------------------------------------------------


async def customers_by_email_key(s: AsyncSession, keys: list[str]) -> dict[str, tuple[int, str, bool]]:
    """email key -> (customer id, stored password hash, active), for those of `keys` that exist."""
    if not keys:
        return {}
    rows = await s.execute(
        select(CustomerRow.email_key, CustomerRow.id, CustomerRow.password_hash, CustomerRow.is_active).where(
            CustomerRow.email_key.in_(keys)
        )
    )
    return {k: (i, h, a) for k, i, h, a in rows}


@dataclass(frozen=True, slots=True)
class Standing:
    """Where an imported customer belongs and whether it may sign in, as its source had it."""

    website_id: int = 1
    store_id: int = 1
    group_id: int = 1
    is_active: bool = True


_IMPORTED = (
    "email",
    "email_key",
    "name_skeleton",
    "firstname",
    "lastname",
    "password_hash",
    "is_active",
    "website_id",
    "store_id",
    "group_id",
    "created_at",
    "updated_at",
)


async def insert_customers(s: AsyncSession, people: list[tuple[names.Name, str, str, str, Standing]]) -> None:
    """New customers in one statement: (name, first name, last name, stored hash, standing) each.
    The caller has checked that none exists and that none needs the look-alike check (ASCII email).
    On PostgreSQL by COPY, in the session's transaction; elsewhere a Core executemany (the table,
    not the class: no ORM bookkeeping)."""
    if not people:
        return
    now = utcnow()
    records = [
        (
            n.shown,
            n.key,
            n.skeleton,
            first.strip(),
            last.strip(),
            hashed,
            st.is_active,
            st.website_id,
            st.store_id,
            st.group_id,
            now,
            now,
        )
        for n, first, last, hashed, st in people
    ]
    conn = await s.connection()
    if conn.dialect.driver == "asyncpg":
        await conn.exec_driver_sql("SELECT 1")  # the session's transaction is begun on this connection
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        await driver.copy_records_to_table("customers", records=records, columns=_IMPORTED)
        return
    await s.execute(insert(cast(Table, CustomerRow.__table__)), [dict(zip(_IMPORTED, r, strict=True)) for r in records])


async def update_imported_customer(
    s: AsyncSession,
    customer_id: int,
    *,
    firstname: str,
    lastname: str,
    password_hash: str | None,
    standing: Standing | None = None,
) -> None:
    """An import run's `--on-conflict update` (or a one-by-one import's standing): the names, the
    standing when given, and the hash when one is given."""
    values: dict[str, Any] = {"firstname": firstname.strip(), "lastname": lastname.strip(), "updated_at": utcnow()}
    if password_hash is not None:
        values["password_hash"] = password_hash
    if standing is not None:
        values |= {
            "website_id": standing.website_id,
            "store_id": standing.store_id,
            "group_id": standing.group_id,
            "is_active": standing.is_active,
        }
    await s.execute(update(CustomerRow).where(CustomerRow.id == customer_id).values(**values))
