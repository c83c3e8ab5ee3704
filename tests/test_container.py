"""The container image from deploy/Containerfile, built and started with podman.

No image registry is reachable from the test machines, so the base image is one you make from
Debian packages and name in TILLKEY_TEST_CONTAINER_BASE (docs/production.md#container-image-without-a-registry):

    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm /var/tmp/rootfs
    tar -C /var/tmp/rootfs -c . | podman import - localhost/debian-python:12
    TILLKEY_TEST_CONTAINER_BASE=localhost/debian-python:12 .venv/bin/pytest tests/test_container.py

Without podman or that variable the test skips and says why. It builds the image (a few minutes:
pip installs Tillkey in the build stage), starts it, and checks that `tillkey serve` runs as the
non-root user, answers /healthz and the health check, keeps its files private and stops on SIGTERM.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
BASE = os.environ.get("TILLKEY_TEST_CONTAINER_BASE", "")
IMAGE = "localhost/tillkey-test:latest"
# What this machine needs (itself a container): build with chroot isolation; run with runc (crun
# refuses hybrid cgroups), ulimits it may set, and no health-check timer (no systemd). Override with
# TILLKEY_TEST_PODMAN_RUN_FLAGS on a host that needs none of it.
# Building with vfs storage (no overlay here) copies every layer: several minutes.
pytestmark = pytest.mark.timeout(1800)
RUN_FLAGS = os.environ.get(
    "TILLKEY_TEST_PODMAN_RUN_FLAGS",
    "--runtime runc --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 --no-healthcheck",
).split()


def podman(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: {res.stderr[-2000:]}")
    return res


@pytest.fixture(scope="module")
def image() -> str:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (apt-get install podman)")
    if not BASE:
        pytest.skip("set TILLKEY_TEST_CONTAINER_BASE to a local Debian base image (see this file's docstring)")
    podman(
        "build",
        "--isolation",
        "chroot",
        "--network",
        "host",
        "--format",
        "docker",
        "--build-arg",
        f"BASE={BASE}",
        "-f",
        "deploy/Containerfile",
        "-t",
        IMAGE,
        str(ROOT),
        timeout=1800,
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
        admins = podman("exec", name, "tillkey", "admin", "list", "--json").stdout
        assert admins.strip() == '{"admins": []}'  # the CLI inside finds the server's data
        podman("stop", "-t", "30", name, timeout=60)
        state = podman("inspect", name, "--format", "{{.State.ExitCode}}").stdout.strip()
        assert state == "0"  # SIGTERM drains and exits 0
    finally:
        podman("rm", "-f", name, check=False)
