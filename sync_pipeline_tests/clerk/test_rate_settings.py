"""The rate settings read from the environment: one-line errors, and their way into the resource."""

from __future__ import annotations

import pytest

from sync_pipeline import settings
from sync_pipeline.definitions import build_resources
from sync_pipeline.errors import ConfigurationError


def test_defaults_take_half_the_instance_and_wait_ten_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CLERK_RATE_SHARE", "CLERK_REQUESTS_PER_10S", "CLERK_STALL_TIMEOUT_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    assert settings.clerk_rate_share() == 0.5
    assert settings.clerk_stall_timeout_seconds() == 600
    assert settings.clerk_requests_per_10s() is None


@pytest.mark.parametrize("raw", ["0", "-0.1", "1.5", "half", "nan", "inf"])
def test_a_share_outside_zero_to_one_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("CLERK_RATE_SHARE", raw)
    with pytest.raises(ConfigurationError, match=r"CLERK_RATE_SHARE=.* must be a number in \(0, 1\]") as caught:
        settings.clerk_rate_share()
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("raw", ["0", "-5", "soon", "inf"])
def test_a_bad_stall_timeout_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("CLERK_STALL_TIMEOUT_SECONDS", raw)
    with pytest.raises(ConfigurationError, match="CLERK_STALL_TIMEOUT_SECONDS"):
        settings.clerk_stall_timeout_seconds()


def test_the_resource_takes_the_share_and_an_absolute_rate_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLERK_RATE_SHARE", "0.25")
    monkeypatch.setenv("CLERK_STALL_TIMEOUT_SECONDS", "120")
    monkeypatch.delenv("CLERK_REQUESTS_PER_10S", raising=False)
    clerk = build_resources()["clerk"]
    assert clerk.rate_share == 0.25 and clerk.stall_timeout_seconds == 120
    monkeypatch.setenv("CLERK_REQUESTS_PER_10S", "70")
    assert build_resources()["clerk"].requests_per_10s == 70
