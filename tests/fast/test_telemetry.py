"""FastAPI's native OpenTelemetry under Tillkey (app.settle_telemetry): whether a provider is
configured is asked once, when the server starts, not on every request (issue 19: the per-request
question cost about 3 us, more than the whole access check)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

from tests import inprocess


class RecordingTracer(trace.NoOpTracer):
    def __init__(self, spans: list[str]) -> None:
        self.spans = spans

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> trace.Span:
        self.spans.append(name)
        return super().start_span(name, *args, **kwargs)


class RecordingProvider(trace.TracerProvider):
    """A configured tracer provider, as `opentelemetry-instrument` would set before the app starts."""

    def __init__(self) -> None:
        self.spans: list[str] = []

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return RecordingTracer(self.spans)


def test_without_a_provider_at_start_requests_do_not_ask_opentelemetry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    real = trace.get_tracer_provider

    def counting() -> trace.TracerProvider:
        asked.append("tracer")
        return real()

    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            monkeypatch.setattr(trace, "get_tracer_provider", counting)
            for _ in range(3):
                r = await t.client.get("/tillkey/v1/forward-auth")
                assert r.status_code == 400  # no original request named: answered, untraced
            r = await t.client.get("/readyz")
            assert r.status_code == 200

    inprocess.run(body)
    assert asked == []


def test_a_provider_configured_at_start_still_traces_every_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = RecordingProvider()
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)

    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            assert (await t.client.get("/readyz")).status_code == 200
            assert (await t.client.get("/tillkey/v1/forward-auth")).status_code == 400

    inprocess.run(body)
    assert provider.spans == ["GET", "GET"]
