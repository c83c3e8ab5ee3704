"""store/db.insert_many_sync: a group's rows in multi-row INSERTs (power-of-two chunks under
SQLite's variable limit), every row stored once, in order, or none of them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, select

from tillkey.store.db import insert_many_sync

META = MetaData()
ROWS = Table("rows", META, Column("id", Integer, primary_key=True), Column("name", String), Column("n", Integer))


@pytest.mark.parametrize("count", [0, 1, 2, 37, 128, 129, 300])
@pytest.mark.parametrize("variable_limit", [None, 30, 3])
def test_every_row_once_in_order(tmp_path: Path, count: int, variable_limit: int | None) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    META.create_all(engine)
    rows = [(i, f"row {i} ' \" ?", i * 7) for i in range(count)]
    with engine.begin() as conn:
        if variable_limit is not None:  # an older SQLite's (999) or lower: smaller chunks
            driver = conn.connection.dbapi_connection
            assert driver is not None
            driver.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, variable_limit)
        insert_many_sync(conn, ROWS, ("id", "name", "n"), rows)
    with engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(select(ROWS).order_by(ROWS.c.id))] == rows


def test_a_refused_row_stores_none_of_the_group(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    META.create_all(engine)
    rows = [(i, "x", i) for i in range(40)] + [(3, "duplicate id", 0)]
    with pytest.raises(Exception, match="UNIQUE"), engine.begin() as conn:
        insert_many_sync(conn, ROWS, ("id", "name", "n"), rows)
    with engine.connect() as conn:
        assert conn.execute(select(ROWS)).all() == []
