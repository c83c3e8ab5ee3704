"""The one way a test gets the npm packages of a folder under tests/js/: `npm ci` from its
committed lock file, once, under a file lock (pytest-xdist workers may ask at the same time)."""

from __future__ import annotations

import fcntl
import subprocess
from pathlib import Path

from tests.conftest import need_node

JS = Path(__file__).parent / "js"


def installed(name: str, marker: str, *, what: str) -> Path:
    """tests/js/NAME with its node_modules in place (`marker` is a package that must be there);
    skips (or fails under TILLKEY_TEST_REQUIRE_SERVICES=1) without Node.js and npm."""
    need_node(what)
    folder = JS / name
    with open(folder / ".npm-ci.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "node_modules" / marker).exists():
            npm_ci = ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"]
            subprocess.run(npm_ci, cwd=folder, check=True, capture_output=True, timeout=300)
    return folder
