"""Settings from the environment, in one place, with one-line errors naming what to fix.

| variable | meaning | default |
|---|---|---|
| ``CLERK_SECRET_KEY`` | Clerk Backend API key (``sk_live_…``/``sk_test_…``) | required |
| ``CLERK_API_URL`` | Backend API base URL | ``https://api.clerk.com/v1`` |
| ``CLERK_RATE_SHARE`` | share (0-1] of the instance's rate limit the sync takes | ``0.5`` |
| ``CLERK_REQUESTS_PER_10S`` | request rate to hold (wins over the share) | the share of Clerk's limit for the key |
| ``CLERK_STALL_TIMEOUT_SECONDS`` | fail after this long with no successful request | ``600`` |
| ``DATABASE_URL`` | SQLAlchemy URL of the mirror database | the embedded Postgres (CLI only) |
| ``SYNC_SCHEMA`` | schema of the mirror tables | ``clerk`` |
| ``SYNC_INCLUDE_PRIVATE_METADATA`` | mirror ``private_metadata`` | ``true`` |
| ``SYNC_HARD_DELETE`` | delete rows instead of setting ``deleted_at`` | ``false`` |
| ``SYNC_SCHEDULE_CRON`` | the daily full sync's time (UTC) | ``0 3 * * *`` |
| ``CLERK_WEBHOOK_SECRET`` | the endpoint's signing secret (``whsec_…``), receiver only | required to serve |
| ``SYNC_WEBHOOK_MAX_WAIT_SECONDS`` | an event waiting longer fails the inbox check | ``300`` |
| ``SYNC_WEBHOOK_BATCH_SIZE`` | events one partial sync answers at most | ``500`` |
| ``SYNC_WEBHOOK_SENSOR_INTERVAL_SECONDS`` | how often the sensor looks at the inbox (the daemon's loop makes it 5 s at least) | ``1`` |
| ``SYNC_WEBHOOK_SENSOR_WAIT_SECONDS`` | how long one sensor evaluation keeps watching the inbox for events (0 to 30; 0 looks once) | ``4`` |
| ``SYNC_APP_TABLES`` | YAML file declaring the application's tables to keep consistent | unset: off |
"""

from __future__ import annotations

import os

from sync_pipeline.errors import ConfigurationError
from sync_pipeline.mirror.database import validate_schema_name

DEFAULT_CLERK_API_URL = "https://api.clerk.com/v1"


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{name}={raw!r} is not a boolean: use true or false")


def clerk_api_url() -> str:
    return os.environ.get("CLERK_API_URL") or DEFAULT_CLERK_API_URL


def clerk_secret_key() -> str:
    key = os.environ.get("CLERK_SECRET_KEY", "").strip()
    if not key:
        raise ConfigurationError(
            "CLERK_SECRET_KEY is not set: export your Clerk secret key (sk_live_… or sk_test_…), "
            "or run `sync-pipeline demo` to try the pipeline on the emulator"
        )
    return key


def clerk_requests_per_10s() -> int | None:
    raw = os.environ.get("CLERK_REQUESTS_PER_10S")
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigurationError(f"CLERK_REQUESTS_PER_10S={raw!r} must be a positive integer")
    return value


def clerk_rate_share() -> float:
    """The share of the instance's rate limit the sync takes (the application has the rest)."""
    raw = (os.environ.get("CLERK_RATE_SHARE") or "").strip()
    if not raw:
        return 0.5
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:  # NaN fails too
        raise ConfigurationError(f"CLERK_RATE_SHARE={raw!r} must be a number in (0, 1], e.g. 0.5 for half the instance's limit")
    return value


def clerk_stall_timeout_seconds() -> float:
    """How long a sync waits with no successful request (429s, outages) before failing."""
    return _positive_number("CLERK_STALL_TIMEOUT_SECONDS", 600.0)


def sync_schema() -> str:
    return validate_schema_name(os.environ.get("SYNC_SCHEMA") or "clerk")


def include_private_metadata() -> bool:
    return _flag("SYNC_INCLUDE_PRIVATE_METADATA", True)


def hard_delete() -> bool:
    return _flag("SYNC_HARD_DELETE", False)


def _positive_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise ConfigurationError(f"{name}={raw!r} must be a positive number")
    return value


def webhook_max_wait_seconds() -> float:
    """How long a webhook event may wait in the inbox before the health check fails."""
    return _positive_number("SYNC_WEBHOOK_MAX_WAIT_SECONDS", 300.0)


def webhook_batch_size() -> int:
    """Events one partial sync answers at most (the sensor's batch)."""
    return int(_positive_number("SYNC_WEBHOOK_BATCH_SIZE", 500))


# The daemon's sensor loop comes round every 5 s (Dagster's MIN_INTERVAL_LOOP_TIME, not
# configurable) and evaluates a sensor only when its minimum interval has passed since its
# last tick began. An interval of 5 s is then just missed every other time (the last tick
# began a little after its loop did) and the sensor ticked 5 to 10 s apart, 7.5 s median
# (benchmarks/webhook_latency.py); under 5 s it ticks on every loop, 5 s apart.
DEFAULT_WEBHOOK_SENSOR_INTERVAL_SECONDS = 1


def webhook_sensor_interval_seconds() -> int:
    return int(_positive_number("SYNC_WEBHOOK_SENSOR_INTERVAL_SECONDS", DEFAULT_WEBHOOK_SENSOR_INTERVAL_SECONDS))


# Just under the daemon's 5 s loop: the evaluation covers most of it, and ends before the
# next loop, which would otherwise find it still running and skip the sensor for a loop.
DEFAULT_WEBHOOK_SENSOR_WAIT_SECONDS = 4.0
MAX_WEBHOOK_SENSOR_WAIT_SECONDS = 30.0  # far inside Dagster's 60 s sensor evaluation timeout


def webhook_sensor_wait_seconds() -> float:
    """How long one evaluation of the webhook sensor waits for events before it skips."""
    name = "SYNC_WEBHOOK_SENSOR_WAIT_SECONDS"
    raw = os.environ.get(name)
    if not raw:
        return DEFAULT_WEBHOOK_SENSOR_WAIT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_WEBHOOK_SENSOR_WAIT_SECONDS:
        raise ConfigurationError(f"{name}={raw!r} must be a number of seconds from 0 to {MAX_WEBHOOK_SENSOR_WAIT_SECONDS:g}")
    return value


def app_tables_path() -> str:
    """The YAML file declaring the application's tables; empty when the feature is off.

    Only the path is read here: the file itself is checked when a run starts, so that
    loading the code location never fails on it.
    """
    return (os.environ.get("SYNC_APP_TABLES") or "").strip()
