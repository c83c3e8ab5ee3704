"""The library guard stands alone: `pip install tillkey` (no extras) is enough to import and run it.

Importing `tillkey.guard` must load neither the server (store, runtime, app, CLI) nor any package
that only the `server` or `postgres` extra installs. A fresh interpreter imports it and reports
what got loaded; a scratch virtualenv with the base install alone is the release check in
docs/library-mode.md, this is its fast stand-in on every `make test`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata

from packaging.requirements import Requirement

SERVER_PARTS = ("tillkey.store", "tillkey.runtime", "tillkey.app", "tillkey.cli", "tillkey.accounts", "tillkey.oauth2")
REPORT = "import json, sys, tillkey.guard; print(json.dumps(sorted(sys.modules)))"


def _loaded_by_guard() -> list[str]:
    out = subprocess.run([sys.executable, "-c", REPORT], capture_output=True, text=True, check=True, timeout=60)
    modules: list[str] = json.loads(out.stdout)
    return modules


def _closure(names: set[str], *, optional: bool = False) -> set[str]:
    """These distributions and everything they require; with `optional`, also what any of their
    extras would add (a base dependency may use such a package when it happens to be installed,
    as httpx does click and rich)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = _norm(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}) or optional:
                todo.append(req.name)
                todo.extend(f"{req.name}[{e}]" for e in req.extras)
    return seen


def _norm(name: str) -> str:
    base, _, extra = name.partition("[")
    return re.sub(r"[-_.]+", "-", base).lower() + (f"[{extra}" if extra else "")


def _requirements(extra: str | None) -> set[str]:
    reqs = set()
    for line in metadata.requires("tillkey") or []:
        req = Requirement(line)
        in_extra = req.marker is not None and req.marker.evaluate({"extra": extra or ""})
        if (extra is None and req.marker is None) or (extra is not None and in_extra):
            reqs.add(req.name)
            reqs.update(f"{req.name}[{e}]" for e in req.extras)
    return reqs


def test_importing_the_guard_loads_no_server_module() -> None:
    loaded = _loaded_by_guard()
    assert "tillkey.guard" in loaded
    server = [m for m in loaded if m.partition(".")[0] in {"sqlalchemy", "alembic"} or m.startswith(SERVER_PARTS)]
    assert server == []


def test_the_guard_needs_only_the_base_dependencies() -> None:
    base = {n.partition("[")[0] for n in _closure(_requirements(None), optional=True)}
    server_only = {n.partition("[")[0] for n in _closure(_requirements("server") | _requirements("postgres"))} - base
    assert {"sqlalchemy", "alembic", "fastapi", "typer", "asyncpg"} <= server_only  # the extras are declared
    dists = metadata.packages_distributions()
    loaded = {m.partition(".")[0] for m in _loaded_by_guard()}
    pulled = {_norm(d): top for top in loaded for d in dists.get(top, [])}
    assert sorted(set(pulled) & server_only) == []


def test_the_command_names_the_missing_server_extra() -> None:
    """On a guard-only install `tillkey` answers one line naming the extra, not a traceback.
    Setting sys.modules["typer"] to None makes importing it fail as if it were not installed."""
    script = (
        "import runpy, sys; sys.modules['typer'] = None; sys.argv = ['tillkey', '--help']; "
        "runpy.run_module('tillkey', run_name='__main__')"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "error: the tillkey command needs the server: pip install 'tillkey[server]' (missing module 'typer')"
    ]
