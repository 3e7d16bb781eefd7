"""The webhook receiver: verifies Clerk's deliveries (signed by Svix) and stores them in the inbox.

``POST /webhooks/clerk`` reads the raw body under a size limit, verifies its signature
with the ``svix`` package on the exact bytes, parses it and stores it in
``<schema>.webhook_events``. It does nothing else: no Clerk call, no mirror write; a sync
reads the inbox later. ``GET /healthz`` answers whether a delivery could be stored now:
the database answers, the session is not read-only (a standby, or
``default_transaction_read_only``) and the inbox takes inserts. It asks rather than
writes (no dead rows under a load balancer's polling), and asks on the same pool a
delivery uses, so a pooled session that went bad is found and discarded there too.

The receiver's engine (:func:`receiver_engine`) heals by itself: connections are
pinged when handed out, cut when held past :data:`HELD_CONNECTION_DEADLINE_SECONDS`
(a stalled proxy or a dead peer never holds a thread or a pool slot for long), and
discarded when found read-only; after an outage the next delivery meets a fresh
session.

| answer | when | stored |
|---|---|---|
| 200 ``{"stored": true, "status", "duplicate"}`` | a verified JSON object with a string ``type`` (ignored types too) | yes, once per svix-id |
| 400 | the body is not a JSON object with a string ``type``, or the svix-id is unusable | no |
| 401 | a svix-* header is missing, or the signature is wrong, stale or from the future | no |
| 413 | the body is over ``max_body_bytes`` (checked before the rest is read) | no |
| 503 | the database is unreachable, too slow or read-only | no |

Logs name the svix-id, the event type and the outcome; never the secret, the
signature or the payload.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from copy import deepcopy
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import anyio
import psycopg
import sqlalchemy as sa
import uvicorn
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from svix.webhooks import Webhook, WebhookVerificationError

from sync_pipeline import settings
from sync_pipeline.errors import ConfigurationError
from sync_pipeline.mirror.database import (
    check_connection,
    create_mirror_engine,
    upgrade_schema,
    validate_schema_name,
)
from sync_pipeline.mirror.masked_urls import masked_database_url
from sync_pipeline.webhooks.inbox import StoredDelivery, store_delivery

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/clerk"
DEFAULT_MAX_BODY_BYTES = 1_048_576
SVIX_TOLERANCE = timedelta(minutes=5)
"""The svix package refuses timestamps further than this from its clock; it cannot be widened."""

# Svix wants an answer within about 15 s: give up on the database well before that.
_DATABASE_TIMEOUT_SECONDS = 10.0
# Under that: a connection stuck this long is cut, so its thread returns with an error
# (a 503 Svix retries) and its pool slot is free for the next delivery.
HELD_CONNECTION_DEADLINE_SECONDS = 5.0
STATEMENT_TIMEOUT_SECONDS = 5.0
POOL_TIMEOUT_SECONDS = 5.0
_MAX_SVIX_ID_LENGTH = 256
_SVIX_HEADERS = ("svix-id", "svix-timestamp", "svix-signature")
_DATABASE_OUTAGE = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError, TimeoutError)


def receiver_engine(url: str) -> Engine:
    """The engine the receiver stores with: short transactions, so every wait is bounded."""
    return create_mirror_engine(
        url,
        held_connection_deadline_seconds=HELD_CONNECTION_DEADLINE_SECONDS,
        statement_timeout_seconds=STATEMENT_TIMEOUT_SECONDS,
        pool_timeout_seconds=POOL_TIMEOUT_SECONDS,
    )


def _is_read_only(error: BaseException) -> bool:
    return isinstance(getattr(error, "orig", None), psycopg.errors.ReadOnlySqlTransaction)


def webhook_verifier(secret: str) -> Webhook:
    """The svix verifier for ``secret``; a one-line ConfigurationError when it is not a ``whsec_…`` secret."""
    secret = (secret or "").strip()
    if not secret:
        raise ConfigurationError(
            "CLERK_WEBHOOK_SECRET is not set: copy the endpoint's signing secret (whsec_…) from Clerk's dashboard"
        )
    if not secret.startswith("whsec_"):
        raise ConfigurationError("CLERK_WEBHOOK_SECRET must be the endpoint's signing secret, which starts with whsec_")
    try:
        return Webhook(secret)
    except Exception:  # svix: bad base64 or an empty key; never echo the secret
        raise ConfigurationError("CLERK_WEBHOOK_SECRET is not a valid whsec_ secret (base64 after whsec_)") from None


def _answer(status_code: int, **body: Any) -> JSONResponse:
    return JSONResponse(body, status_code=status_code)


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The raw body, or None as soon as it is known to be over ``limit`` (the rest is never read)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def _parse(body: bytes) -> dict | None:
    """The body as a JSON object with a non-empty string ``type``, else None."""
    try:
        payload = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float)
    except (ValueError, RecursionError):
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str) or not payload["type"]:
        return None
    return payload


async def _in_thread(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a blocking database call in the threadpool; TimeoutError when it takes too long."""
    with anyio.fail_after(_DATABASE_TIMEOUT_SECONDS):
        return await anyio.to_thread.run_sync(lambda: function(*args, **kwargs), abandon_on_cancel=True)


def _error_name(error: BaseException) -> str:
    """The class of an error, with the driver's; never its message (SQLAlchemy's carries the parameters)."""
    original = getattr(error, "orig", None)
    return f"{type(error).__name__} ({type(original).__name__})" if original is not None else type(error).__name__


def create_app(
    engine: Engine,
    schema: str,
    *,
    secret: str,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    tolerance: timedelta = SVIX_TOLERANCE,
    include_private_metadata: bool = True,
) -> Starlette:
    """The receiver as a Starlette app, storing into ``<schema>.webhook_events`` (which must exist).

    ``secret`` is the endpoint's ``whsec_…`` signing secret. ``tolerance`` may tighten
    the svix package's five minutes of allowed clock skew, never widen it.
    ``include_private_metadata=False`` (SYNC_INCLUDE_PRIVATE_METADATA=false) stores each
    payload without Clerk's ``private_metadata``.
    """
    validate_schema_name(schema)
    verifier = webhook_verifier(secret)
    if max_body_bytes < 1:
        raise ValueError("max_body_bytes must be positive")
    if not timedelta(0) < tolerance <= SVIX_TOLERANCE:
        raise ValueError(f"tolerance must be positive and at most {SVIX_TOLERANCE} (the svix package's own limit)")
    tighter_tolerance = tolerance.total_seconds() if tolerance < SVIX_TOLERANCE else None

    async def receive_clerk_webhook(request: Request) -> JSONResponse:
        client = request.client.host if request.client else "?"
        declared = request.headers.get("content-length")
        if declared is not None and not declared.strip().isdigit():
            return _answer(400, error="invalid Content-Length")
        try:
            body = await _read_body(request, max_body_bytes)
        except ClientDisconnect:
            logger.info("webhook from %s: the client went away mid-body", client)
            return _answer(400, error="incomplete body")
        if body is None:
            logger.warning("webhook from %s refused: body over %d bytes", client, max_body_bytes)
            return _answer(413, error=f"body over {max_body_bytes} bytes")

        headers = {name: request.headers[name] for name in _SVIX_HEADERS if name in request.headers}
        try:
            verifier.verify(body, headers)
            if tighter_tolerance is not None and abs(time.time() - float(headers["svix-timestamp"])) > tighter_tolerance:
                raise WebhookVerificationError("Message timestamp outside the tolerance")
        except Exception as error:  # svix's WebhookVerificationError, or malformed headers it trips over
            reason = str(error) if isinstance(error, WebhookVerificationError) else f"malformed headers or body ({type(error).__name__})"
            logger.warning("webhook from %s refused (401): %s", client, reason)
            return _answer(401, error="signature verification failed")

        svix_id = headers["svix-id"]
        if len(svix_id) > _MAX_SVIX_ID_LENGTH or not svix_id.isprintable():
            logger.warning("webhook from %s refused (400): unusable svix-id", client)
            return _answer(400, error="unusable svix-id")
        payload = _parse(body)
        if payload is None:
            logger.warning("webhook %s refused (400): not a JSON object with a string type", svix_id)
            return _answer(400, error="the body must be a JSON object with a string type")
        svix_timestamp = datetime.fromtimestamp(float(headers["svix-timestamp"]), tz=timezone.utc)

        try:
            stored: StoredDelivery = await _in_thread(
                store_delivery,
                engine,
                schema,
                svix_id=svix_id,
                svix_timestamp=svix_timestamp,
                payload=payload,
                include_private_metadata=include_private_metadata,
            )
        except ValueError as error:  # a payload jsonb cannot hold
            logger.warning("webhook %s refused (400): %s", svix_id, error)
            return _answer(400, error="the body cannot be stored")
        except _DATABASE_OUTAGE as error:
            logger.error("webhook %s not stored (503): database unavailable: %s", svix_id, _error_name(error))
            return _answer(503, error="database unavailable")
        except sa.exc.DBAPIError as error:
            if not _is_read_only(error):
                logger.error("webhook %s not stored (500): %s", svix_id, _error_name(error))
                return _answer(500, error="not stored")
            # The engine discarded the session; once the database is writable, the retry lands.
            logger.error("webhook %s not stored (503): the database is read-only", svix_id)
            return _answer(503, error="database read-only")
        except Exception as error:
            logger.error("webhook %s not stored (500): %s", svix_id, _error_name(error))
            return _answer(500, error="not stored")

        logger.info(
            "webhook %s %s: %s%s%s",
            svix_id,
            payload["type"],
            stored.status,
            f" ({stored.problem}; never sent to Clerk)" if stored.problem else "",
            "" if stored.first_delivery else " (redelivery)",
        )
        return _answer(200, stored=True, status=stored.status, duplicate=not stored.first_delivery)

    inbox_table = f'"{schema}".webhook_events'

    def could_store() -> str:
        """'ok', 'read-only' or 'no insert privilege': what a delivery's insert would meet now."""
        with engine.connect() as connection:
            read_only, can_insert = connection.execute(
                sa.text(
                    "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only')::boolean, "
                    "has_table_privilege(:table, 'INSERT')"
                ),
                {"table": inbox_table},
            ).one()
            if read_only:
                connection.invalidate()  # this session stays read-only: the next check opens a fresh one
                return "read-only"
            return "ok" if can_insert else "no insert privilege"

    async def healthz(request: Request) -> JSONResponse:
        try:
            state = await _in_thread(could_store)
        except Exception as error:
            logger.warning("healthz: database unavailable: %s", _error_name(error))
            return _answer(503, database="unavailable")
        if state != "ok":
            logger.warning("healthz: a delivery could not be stored: %s", state)
            return _answer(503, database=state)
        return _answer(200, database="ok")

    return Starlette(
        routes=[
            Route(WEBHOOK_PATH, receive_clerk_webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the Clerk webhook receiver until interrupted (``sync-pipeline webhooks serve``). Blocks.

    Reads ``CLERK_WEBHOOK_SECRET`` (the endpoint's ``whsec_…`` signing secret, required),
    ``DATABASE_URL`` (required: the receiver never falls back to the embedded Postgres,
    whose deliveries no deployed sync would see), ``SYNC_SCHEMA`` (default ``clerk``) and
    ``SYNC_INCLUDE_PRIVATE_METADATA`` (default true),
    then creates or upgrades the schema so the inbox table exists. Point Clerk's endpoint
    at ``http://{host}:{port}/webhooks/clerk``, behind TLS; ``GET /healthz`` is for the load
    balancer. Configuration errors raise a one-line ConfigurationError (or
    DatabaseUnavailableError) before anything listens.
    """
    secret = os.environ.get("CLERK_WEBHOOK_SECRET", "")
    webhook_verifier(secret)
    schema = settings.sync_schema()
    url = os.environ.get("DATABASE_URL", "")
    # The migration may rightly take longer than a delivery's deadlines allow: its own engine.
    migrating = create_mirror_engine(url)
    try:
        check_connection(migrating)
        upgrade_schema(migrating, schema)
    finally:
        migrating.dispose()
    engine = receiver_engine(url)
    app = create_app(engine, schema, secret=secret, include_private_metadata=settings.include_private_metadata())

    log_config = deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["loggers"]["sync_pipeline.webhooks"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    # The engine's own warnings (a connection cut at its deadline) belong in the receiver's log too.
    log_config["loggers"]["sync_pipeline.mirror.database"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    print(
        f"Clerk webhook receiver: http://{host}:{port}{WEBHOOK_PATH} -> "
        f"{masked_database_url(engine.url)} schema {schema}"
    )
    try:
        uvicorn.run(app, host=host, port=port, log_config=log_config, access_log=False, lifespan="off")
    finally:
        engine.dispose()
