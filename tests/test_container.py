"""The container image from deploy/Containerfile, built and started with podman.

No image registry is reachable from the test machines, so the base image is made here from Debian
packages, once per machine (kept as localhost/tillkey-test-base:bookworm), the way
docs/production.md#container-image-without-a-registry describes:

    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm ROOTFS
    tar -C ROOTFS -c . | podman import - localhost/tillkey-test-base:bookworm

plus this machine's own certificate authorities (/usr/local/share/ca-certificates: an egress proxy
that inspects TLS) and a pip.conf that trusts the system bundle, so pip in the build stage reaches
PyPI. TILLKEY_TEST_CONTAINER_BASE names another base image instead.

Needs podman, runc, debootstrap and podman-compose (`apt-get install podman runc debootstrap
podman-compose`) and root; without
them the test skips (fails under TILLKEY_TEST_REQUIRE_SERVICES=1). Measured on a 2-core test
machine shared with other test runs, overlay storage: the base image about 4 minutes and the
compose stand-ins image about 2 (first run on a machine only), the Tillkey image about 3 minutes
when the sources changed (pip installs it), the image's checks 40 seconds, the compose stack 1 to
2.5 minutes; with the images cached, the file takes about 3.5 minutes. It checks that `tillkey serve` runs as
the non-root user, answers /healthz and the image's health check, keeps its files private, that the
CLI inside sees the server's data, and that SIGTERM stops it with exit code 0.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REQUIRE_SERVICES, free_port

ROOT = Path(__file__).resolve().parents[1]
BASE = os.environ.get("TILLKEY_TEST_CONTAINER_BASE", "")
MADE_BASE = "localhost/tillkey-test-base:bookworm"
MIRROR = os.environ.get("TILLKEY_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
IMAGE = "localhost/tillkey-test:latest"
# The base image on a fresh machine (debootstrap) and the build (pip) take minutes.
pytestmark = pytest.mark.timeout(1800)
# What this machine needs (itself a container): build with chroot isolation; run with runc (crun
# refuses hybrid cgroups), ulimits it may set, and no health-check timer (no systemd). Override with
# TILLKEY_TEST_PODMAN_RUN_FLAGS on a host that needs none of it.
RUN_FLAGS = os.environ.get(
    "TILLKEY_TEST_PODMAN_RUN_FLAGS",
    "--runtime runc --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 --no-healthcheck",
).split()


def podman(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: {res.stderr[-2000:]}")
    return res


def missing(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"TILLKEY_TEST_REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


def base_image() -> str:
    """A Debian 12 image with Python 3.11 and venv, made from Debian packages if not there yet."""
    if BASE:
        return BASE
    if podman("image", "exists", MADE_BASE, check=False).returncode == 0:
        return MADE_BASE
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        missing("the base image is made with debootstrap, as root (apt-get install debootstrap)")
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="tillkey-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        made = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,ca-certificates",
                "bookworm",
                str(rootfs),
                MIRROR,
            ],
            capture_output=True,
            text=True,
            timeout=1200,
        )
        assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
        extra = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
        for cert in extra:
            shutil.copy(cert, rootfs / "usr/local/share/ca-certificates" / cert.name)
        if extra:
            subprocess.run(["chroot", str(rootfs), "update-ca-certificates"], check=True, capture_output=True)
        (rootfs / "etc/pip.conf").write_text("[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["podman", "import", "-", MADE_BASE], stdin=tar.stdout, capture_output=True, text=True, timeout=600
        )
        assert tar.stdout is not None
        tar.stdout.close()
        assert tar.wait() == 0 and imported.returncode == 0, imported.stderr[-2000:]
    return MADE_BASE


@pytest.fixture(scope="module")
def image() -> str:
    if shutil.which("podman") is None or shutil.which("runc") is None:
        missing("podman and runc are not installed (apt-get install podman runc debootstrap)")
    base = base_image()
    podman(
        "build",
        "--isolation",
        "chroot",
        "--network",
        "host",
        "--format",
        "docker",
        "--build-arg",
        f"BASE={base}",
        "-f",
        str(ROOT / "deploy" / "Containerfile"),
        "-t",
        IMAGE,
        str(ROOT),
        timeout=1500,
    )
    return IMAGE


def test_the_image_serves_as_a_non_root_user_and_stops_cleanly(image: str) -> None:
    config = podman("image", "inspect", image, "--format", "{{.Config.User}} {{json .Config.Entrypoint}}").stdout
    assert config.strip() == '10001:10001 ["tillkey"]'
    health = json.loads(podman("image", "inspect", image, "--format", "{{json .Config.Healthcheck.Test}}").stdout)
    assert health[0] == "CMD" and "http://127.0.0.1:8000/healthz" in health[-1]
    port = free_port()
    name = f"tillkey-test-{port}"
    podman(
        "run",
        "-d",
        "--name",
        name,
        *RUN_FLAGS,
        "--network",
        "host",
        image,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, podman("logs", name, check=False).stderr
            time.sleep(0.5)
        assert httpx.get(f"http://127.0.0.1:{port}/").headers["location"] == "/console/"
        # The image's health check, run by hand (no timer here), against this container's port.
        check = [part.replace(":8000/", f":{port}/") for part in health[1:]]
        assert podman("exec", name, *check, check=False).returncode == 0
        assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
        modes = podman(
            "exec",
            name,
            "stat",
            "-c",
            "%a %n",
            "/var/lib/tillkey",
            "/var/lib/tillkey/secret.key",
            "/var/lib/tillkey/tillkey.db",
        ).stdout.split("\n")
        assert [m.split()[0] for m in modes if m] == ["700", "600", "600"]
        # SAML and LDAP work inside: pysaml2's xmlsec1 and python-ldap's libraries are in the image.
        assert podman("exec", name, "xmlsec1", "--version").stdout.startswith("xmlsec1 ")
        assert podman("exec", name, "python3", "-c", "import ldap, saml2").returncode == 0
        admins = podman("exec", name, "tillkey", "admin", "list", "--json").stdout
        assert admins.strip() == '{"admins": []}'  # the CLI inside finds the server's data
        podman("stop", "-t", "30", name, timeout=60)
        state = podman("inspect", name, "--format", "{{.State.ExitCode}}").stdout.strip()
        assert state == "0"  # SIGTERM drains and exits 0
    finally:
        podman("rm", "-f", "-v", name, check=False)  # -v: its anonymous volume too


SERVICES = "localhost/tillkey-test-services:bookworm"
STACK = [
    "-f",
    str(ROOT / "deploy" / "compose.yaml"),
    "-f",
    str(ROOT / "tests" / "container" / "compose.stand-ins.yaml"),
]


def test_the_compose_stack_serves_two_processes_behind_nginx_with_forward_auth(image: str) -> None:
    """deploy/compose.yaml with podman-compose: PostgreSQL, Redis, the migration, two Tillkey
    processes, nginx in front of them and of an application it protects with forward-auth. The
    registry images are replaced by stand-ins made from Debian packages (tests/container/)."""
    if shutil.which("podman-compose") is None:
        missing("podman-compose is not installed (apt-get install podman-compose)")
    podman(
        "build",
        "--isolation",
        "chroot",
        "--network",
        "host",
        "--format",
        "docker",
        "--build-arg",
        f"BASE={base_image()}",
        "-f",
        str(ROOT / "tests" / "container" / "Containerfile.stand-ins"),
        "-t",
        SERVICES,
        str(ROOT / "tests" / "container"),
        timeout=1200,
    )
    podman("tag", image, "localhost/tillkey:latest")  # the name compose.yaml gives the image it builds
    port = free_port()
    env = {
        **os.environ,
        "TILLKEY_SECRET_KEY": secrets.token_urlsafe(32),
        "POSTGRES_PASSWORD": secrets.token_urlsafe(16),
        "TILLKEY_HTTP_PORT": str(port),
    }
    run_args = " ".join(flag for flag in RUN_FLAGS if flag != "--no-healthcheck")
    project = f"tillkey-test-{port}"

    def compose(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman-compose", "-p", project, "--podman-run-args", run_args, *STACK, *args],
            # podman-compose runs `podman exec --interactive`: with the caller's stdin left open
            # the command inside never finished here (seen: 120 s, then killed).
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
        )

    base = f"http://127.0.0.1:{port}"
    try:
        up = compose("up", "-d")
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        # podman-compose starts in order but does not wait for health: the servers retry
        # (restart: unless-stopped) until PostgreSQL answers.
        deadline = time.monotonic() + 240
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, compose("logs", timeout=60).stdout[-4000:]
            time.sleep(1)
        made = compose(
            "exec",
            "-T",
            "tillkey-1",
            "sh",
            "-c",
            "echo Compose-test-passw0rd | tillkey admin create --username alice --email alice@example.com"
            " --password-stdin",
            timeout=120,
        )
        assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
        key = compose(
            "exec",
            "-T",
            "tillkey-2",
            "tillkey",
            "api-key",
            "create",
            "--title",
            "shop job",
            "--type",
            "secret",
            "--for",
            "alice",
            "--json",
            timeout=120,
        )
        assert key.returncode == 0, key.stdout[-2000:] + key.stderr[-2000:]
        # podman-compose prints its own lines around the command's output.
        printed = next(line for line in reversed(key.stdout.splitlines()) if line.startswith("{"))
        secret = json.loads(printed)["token"]
        assert secret.startswith("sk_")
        # Through nginx: the public part without a credential, the rest only with one; whichever
        # process answers, the key made through the other one works (the change feed over Redis).
        assert httpx.get(f"{base}/shop/public/", timeout=5).status_code == 200
        assert httpx.get(f"{base}/shop/orders", timeout=5).status_code == 401
        with_key = {"Authorization": f"Basic {base64.b64encode(f'{secret}:'.encode()).decode()}"}
        deadline = time.monotonic() + 10
        while httpx.get(f"{base}/shop/orders", headers=with_key, timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "the key never worked through nginx"
            time.sleep(0.5)
        for _ in range(4):
            shop = httpx.get(f"{base}/shop/orders", headers=with_key, timeout=5)
            assert shop.status_code == 200 and "X-Tillkey-User-Type: api_key" in shop.text, shop.text
        assert httpx.get(f"{base}/console", timeout=5).status_code in (302, 307)
    finally:
        # podman-compose 1.0.3's `down -v` leaves the images' anonymous volumes (/var/lib/tillkey).
        ids = podman("ps", "-a", "-q", "--filter", f"label=io.podman.compose.project={project}", check=False)
        if ids.stdout.split():
            podman("rm", "-f", "-v", *ids.stdout.split(), timeout=120, check=False)
        compose("down", "-v", timeout=300)
        podman("network", "rm", "-f", f"{project}_default", check=False)  # 1.0.3's `down` keeps it
