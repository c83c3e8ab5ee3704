"""The deployment files under deploy/: the systemd unit passes `systemd-analyze verify`, the compose
file hangs together (services, dependencies, settings Tillkey accepts), nginx accepts its config,
the Containerfile builds a non-root image around `tillkey serve`, and the example TOML loads."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import REQUIRE_SERVICES, TILLKEY
from tillkey.access import route_table
from tillkey.access.tree import ResourceTree
from tillkey.cli import app
from tillkey.configuration import check_database_url
from tillkey.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if REQUIRE_SERVICES:
            pytest.fail(f"TILLKEY_TEST_REQUIRE_SERVICES=1 but {tool} is not installed")
        pytest.skip(f"{tool} is not installed")
    return path


def verify_unit(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    # The unit names /opt/tillkey/bin/tillkey, where the guide installs it; verify checks that the
    # command exists, so point it at this checkout's instead.
    unit = tmp_path / "tillkey.service"
    unit.write_text(text.replace("/opt/tillkey/bin/tillkey", TILLKEY))
    return subprocess.run([need("systemd-analyze"), "verify", str(unit)], capture_output=True, text=True, timeout=60)


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    text = (DEPLOY / "tillkey.service").read_text()
    res = verify_unit(tmp_path, text)
    assert res.returncode == 0 and "tillkey.service" not in res.stdout + res.stderr, res.stdout + res.stderr
    expected = [
        "User=tillkey",
        "StateDirectory=tillkey",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "KillSignal=SIGTERM",
        "Restart=on-failure",
        "Environment=TILLKEY_CONFIG=/etc/tillkey/tillkey.toml",
    ]
    for line in expected:
        assert line in text.splitlines(), line
    # ...and the check can fail: a broken unit is reported.
    broken = verify_unit(tmp_path, text.replace("Type=exec", "Type=sometimes"))
    assert "Failed to parse service type" in broken.stdout + broken.stderr


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_the_compose_file_hangs_together() -> None:
    spec = compose()
    services: dict[str, Any] = spec["services"]
    assert set(services) == {"postgres", "redis", "migrate", "tillkey-1", "tillkey-2", "app", "nginx"}
    for name, service in services.items():
        assert "image" in service, name
        for needed in service.get("depends_on", {}):
            assert needed in services, f"{name} depends on unknown {needed}"
    for name in ("tillkey-1", "tillkey-2", "migrate"):
        service = services[name]
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Containerfile"}
        assert (DEPLOY.parent / service["build"]["dockerfile"]).is_file()
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["tillkey-1"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # Both servers share one database, one Redis and one master secret, each given by the operator.
    env = services["tillkey-1"]["environment"]
    assert env == services["tillkey-2"]["environment"]
    assert env["TILLKEY_SECRET_KEY"].startswith("${TILLKEY_SECRET_KEY:?")
    url = re.sub(r"\$\{[^}]*\}", "secret", env["TILLKEY_DATABASE_URL"])
    assert check_database_url(url) == url and "@postgres:5432/tillkey" in url
    assert env["TILLKEY_REDIS_URL"] == "redis://redis:6379/0"
    # The forward-auth table is one Tillkey accepts.
    settings = Settings(forward_auth_routes=yaml.safe_load(env["TILLKEY_FORWARD_AUTH_ROUTES"]))
    assert route_table.build(settings.forward_auth_routes, None, ResourceTree.load())
    # nginx mounts the config checked below, and is the only published port (on loopback).
    assert services["nginx"]["volumes"] == ["./nginx.conf:/etc/nginx/conf.d/default.conf:ro"]
    assert [s for s in services if services[s].get("ports")] == ["nginx"]
    assert services["nginx"]["ports"] == ["127.0.0.1:${TILLKEY_HTTP_PORT:-8080}:80"]  # loopback only


def test_nginx_accepts_the_compose_config(tmp_path: Path) -> None:
    nginx = need("nginx")
    conf = (DEPLOY / "nginx.conf").read_text()
    for host in ("tillkey-1", "tillkey-2", "app"):  # compose's names resolve only inside compose
        conf = conf.replace(f"server {host}:", "server 127.0.0.1:")
    (tmp_path / "site.conf").write_text(conf)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log; events {{}}\n"
        f"http {{ access_log off; client_body_temp_path {tmp_path}; include {tmp_path}/site.conf; }}\n"
    )
    res = subprocess.run([nginx, "-t", "-q", "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_the_containerfile_runs_tillkey_serve_as_a_non_root_user() -> None:
    lines = [ln.strip() for ln in (DEPLOY / "Containerfile").read_text().splitlines()]
    froms = [ln for ln in lines if ln.startswith("FROM ")]
    assert froms == ["FROM ${BASE} AS build", "FROM ${BASE}"]  # multi-stage: no build tools at run time
    assert "USER 10001:10001" in lines
    assert any(ln.startswith("HEALTHCHECK ") for ln in lines)
    assert 'ENTRYPOINT ["tillkey"]' in lines
    assert 'CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]' in lines
    for ln in lines:
        if ln.startswith("COPY ") and "--from" not in ln:
            for source in ln.split()[1:-1]:
                assert (DEPLOY.parent / source).exists(), source


def test_the_example_settings_file_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TILLKEY_CONFIG", "")  # restored afterwards; --config sets it
    monkeypatch.delenv("TILLKEY_ISSUER", raising=False)
    res = CliRunner().invoke(app, ["--config", str(DEPLOY / "tillkey.toml.example"), "config", "show", "--json"])
    assert res.exit_code == 0, res.output
    assert '"value": "https://auth.example.com"' in res.output
    assert '"path": "/api/products/**"' in res.output
