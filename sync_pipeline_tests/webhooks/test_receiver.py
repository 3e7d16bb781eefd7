"""The webhook receiver: verify with svix on the raw bytes, store once, refuse everything else cleanly."""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import warnings

import anyio
import pytest
import sqlalchemy as sa
import standardwebhooks.webhooks
from starlette.applications import Starlette
from svix.webhooks import Webhook

with warnings.catch_warnings():  # starlette 1.x nudges towards httpx2; httpx is what we have
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from sync_pipeline.errors import ConfigurationError
from sync_pipeline.mirror.database import create_mirror_engine, upgrade_schema
from sync_pipeline.webhooks import receiver
from sync_pipeline.webhooks.receiver import create_app
from sync_pipeline_tests.fixtures import load

SECRET = "whsec_" + base64.b64encode(b"receiver-test-secret-0123456789ab").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"the-secret-before-the-rotation!!").decode()
PATH = "/webhooks/clerk"
USER_UPDATED = json.dumps(load("webhook_user.updated"))


def signed(body: str, *, secret: str = SECRET, msg_id: str | None = None, at: datetime | None = None) -> dict[str, str]:
    """Headers as Svix sends them, signed by svix itself."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(timezone.utc)
    return {
        "svix-id": msg_id,
        "svix-timestamp": str(math.floor(at.timestamp())),
        "svix-signature": Webhook(secret).sign(msg_id, at, body),
    }


def stored_rows(engine: sa.Engine, schema: str) -> list[dict]:
    with engine.connect() as connection:
        rows = connection.execute(sa.text(f'SELECT * FROM "{schema}".webhook_events ORDER BY svix_id'))
        return [dict(row._mapping) for row in rows]


@pytest.fixture
def inbox(engine: sa.Engine, schema: str) -> str:
    upgrade_schema(engine, schema)
    return schema


@pytest.fixture
def client(engine: sa.Engine, inbox: str) -> Iterator[TestClient]:
    with TestClient(create_app(engine, inbox, secret=SECRET, max_body_bytes=64 * 1024)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def refusals(engine: sa.Engine) -> Iterator[tuple[TestClient, str]]:
    """A client on a schema shared by the tests whose requests must all be refused: it stays empty."""
    name = f"t_refusals_{uuid.uuid4().hex[:8]}"
    upgrade_schema(engine, name)
    try:
        with TestClient(create_app(engine, name, secret=SECRET, max_body_bytes=64 * 1024)) as test_client:
            yield test_client, name
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))


@pytest.fixture
def refusing(refusals: tuple[TestClient, str], engine: sa.Engine) -> Iterator[TestClient]:
    """The shared client for a request that must store nothing; checks afterwards that nothing was stored."""
    client, name = refusals
    yield client
    assert stored_rows(engine, name) == []


@pytest.fixture
def svix_clock(monkeypatch: pytest.MonkeyPatch):
    """Set the clock the svix package verifies timestamps against (it reads datetime.now in standardwebhooks)."""

    def freeze(at: datetime) -> None:
        class FrozenDatetime(datetime):
            @classmethod
            def now(cls, tz=None):  # noqa: ANN001, ANN206
                return at.astimezone(tz)

        monkeypatch.setattr(standardwebhooks.webhooks, "datetime", FrozenDatetime)

    return freeze


# ------------------------------------------------------------------ signatures


def test_the_known_answer_vector_is_accepted_when_the_clock_reads_its_timestamp(engine: sa.Engine, inbox: str, svix_clock) -> None:
    vector = load("signed_delivery")
    svix_clock(datetime.fromtimestamp(int(vector["headers"]["svix-timestamp"]), tz=timezone.utc) + timedelta(seconds=30))
    with TestClient(create_app(engine, inbox, secret=vector["secret"])) as client:
        body = vector["body"].encode("utf-8")
        # its first v1 entry is a stale one from a rotated secret: any matching entry passes
        assert vector["headers"]["svix-signature"].count("v1,") == 2
        answer = client.post(PATH, content=body, headers=vector["headers"])
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"stored": True, "status": "pending", "duplicate": False}

        tampered = body.replace(b"Zo\xc3\xab", b"Zoe\xcc\x88")  # the same name, other bytes
        assert client.post(PATH, content=tampered, headers=vector["headers"]).status_code == 401
        one_byte = body.replace(b'"user.created"', b'"user.createD"')
        assert client.post(PATH, content=one_byte, headers=vector["headers"]).status_code == 401

    [row] = stored_rows(engine, inbox)
    assert row["svix_id"] == "msg_2nQ7zXc3PqLm9RtY6uVb1WsKdHe"
    assert row["payload"] == json.loads(vector["body"])
    assert (row["event_type"], row["user_id"], row["status"]) == ("user.created", "user_2nQ7zXc3PqLm9RtY6uVb1WsKdHe", "pending")
    assert row["svix_timestamp"] == datetime(2024, 11, 13, 12, 13, 20, tzinfo=timezone.utc)


def test_the_known_answer_vector_is_stale_on_the_real_clock(refusing: TestClient) -> None:
    vector = load("signed_delivery")
    answer = refusing.post(PATH, content=vector["body"].encode("utf-8"), headers=vector["headers"])
    assert answer.status_code == 401


def test_a_fresh_delivery_is_accepted_and_stored(client: TestClient, engine: sa.Engine, inbox: str) -> None:
    headers = signed(USER_UPDATED, msg_id="msg_fresh")
    answer = client.post(PATH, content=USER_UPDATED.encode(), headers=headers)
    assert answer.status_code == 200
    assert answer.json() == {"stored": True, "status": "pending", "duplicate": False}
    [row] = stored_rows(engine, inbox)
    assert (row["svix_id"], row["entity"], row["delivery_count"]) == ("msg_fresh", "user", 1)
    assert row["svix_timestamp"] == datetime.fromtimestamp(int(headers["svix-timestamp"]), tz=timezone.utc)


@pytest.mark.parametrize(
    "case",
    ["tampered body", "wrong secret", "only the old secret", "stale", "future", "bad timestamp",
     "not base64", "no comma", "two commas", "only v2", "empty signature"],
)
def test_bad_signatures_get_401_and_store_nothing(refusing: TestClient, case: str) -> None:
    body = USER_UPDATED
    headers = signed(body)
    now = datetime.now(timezone.utc)
    if case == "tampered body":
        body = body.replace("user.updated", "user.deleted")
    elif case == "wrong secret":
        headers = signed(body, secret="whsec_" + base64.b64encode(b"someone-else").decode())
    elif case == "only the old secret":
        headers = signed(body, secret=OLD_SECRET)
    elif case == "stale":
        headers = signed(body, at=now - timedelta(minutes=6))
    elif case == "future":
        headers = signed(body, at=now + timedelta(minutes=6))
    elif case == "bad timestamp":
        headers["svix-timestamp"] = "nan"
    elif case == "not base64":
        headers["svix-signature"] = "v1,@@@ not base64 @@@"
    elif case == "no comma":
        headers["svix-signature"] = headers["svix-signature"].replace(",", "")
    elif case == "two commas":
        headers["svix-signature"] += ",x"
    elif case == "only v2":
        headers["svix-signature"] = headers["svix-signature"].replace("v1,", "v2,")
    elif case == "empty signature":
        headers["svix-signature"] = ""
    answer = refusing.post(PATH, content=body.encode(), headers=headers)
    assert answer.status_code == 401, answer.text


def test_the_rotated_secret_entry_passes_beside_a_stale_one(client: TestClient, engine: sa.Engine, inbox: str) -> None:
    at = datetime.now(timezone.utc)
    old = signed(USER_UPDATED, secret=OLD_SECRET, msg_id="msg_rotated", at=at)
    new = signed(USER_UPDATED, secret=SECRET, msg_id="msg_rotated", at=at)
    for order in ((old, new), (new, old)):
        headers = {**new, "svix-signature": " ".join(h["svix-signature"] for h in order)}
        assert client.post(PATH, content=USER_UPDATED.encode(), headers=headers).status_code == 200
    assert [row["delivery_count"] for row in stored_rows(engine, inbox)] == [2]


def test_a_timestamp_within_five_minutes_is_accepted(client: TestClient) -> None:
    for skew in (timedelta(minutes=-4), timedelta(minutes=4)):
        headers = signed(USER_UPDATED, at=datetime.now(timezone.utc) + skew)
        assert client.post(PATH, content=USER_UPDATED.encode(), headers=headers).status_code == 200


@pytest.mark.parametrize("missing", ["svix-id", "svix-timestamp", "svix-signature"])
def test_each_missing_header_gets_401(refusing: TestClient, missing: str) -> None:
    headers = signed(USER_UPDATED)
    del headers[missing]
    assert refusing.post(PATH, content=USER_UPDATED.encode(), headers=headers).status_code == 401


def test_standard_webhooks_header_names_do_not_stand_in_for_svix_ones(refusing: TestClient) -> None:
    headers = {name.replace("svix-", "webhook-"): value for name, value in signed(USER_UPDATED).items()}
    assert refusing.post(PATH, content=USER_UPDATED.encode(), headers=headers).status_code == 401


def test_a_tighter_tolerance_refuses_what_svix_would_accept(engine: sa.Engine, inbox: str) -> None:
    with TestClient(create_app(engine, inbox, secret=SECRET, tolerance=timedelta(seconds=60))) as client:
        late = signed(USER_UPDATED, at=datetime.now(timezone.utc) - timedelta(minutes=2))
        assert client.post(PATH, content=USER_UPDATED.encode(), headers=late).status_code == 401
        assert client.post(PATH, content=USER_UPDATED.encode(), headers=signed(USER_UPDATED)).status_code == 200
    with pytest.raises(ValueError, match="at most"):
        create_app(engine, inbox, secret=SECRET, tolerance=timedelta(minutes=10))


def test_a_body_that_is_not_utf8_gets_401_not_500(refusing: TestClient) -> None:
    headers = signed(USER_UPDATED)
    assert refusing.post(PATH, content=b"\xff\xfe" + USER_UPDATED.encode(), headers=headers).status_code == 401


# ------------------------------------------------------------------ what is stored


def test_a_redelivery_is_stored_once_with_delivery_count_2(client: TestClient, engine: sa.Engine, inbox: str) -> None:
    first = client.post(PATH, content=USER_UPDATED.encode(), headers=signed(USER_UPDATED, msg_id="msg_retry"))
    # Svix signs every attempt anew; the svix-id stays
    retry_headers = signed(USER_UPDATED, msg_id="msg_retry", at=datetime.now(timezone.utc) + timedelta(seconds=5))
    second = client.post(PATH, content=USER_UPDATED.encode(), headers=retry_headers)
    assert first.json() == {"stored": True, "status": "pending", "duplicate": False}
    assert second.json() == {"stored": True, "status": "pending", "duplicate": True}
    [row] = stored_rows(engine, inbox)
    assert row["delivery_count"] == 2 and row["last_received_at"] >= row["received_at"]


def test_ignored_types_are_stored_as_ignored(client: TestClient, engine: sa.Engine, inbox: str) -> None:
    for payload in (load("webhook_session.created"), {"type": "email.created", "data": {"id": "ema_1"}}, {"type": "billing.whatever"}):
        body = json.dumps(payload)
        answer = client.post(PATH, content=body.encode(), headers=signed(body))
        assert answer.status_code == 200
        assert answer.json()["status"] == "ignored"
    assert sorted(row["event_type"] for row in stored_rows(engine, inbox)) == ["billing.whatever", "email.created", "session.created"]
    assert {row["status"] for row in stored_rows(engine, inbox)} == {"ignored"}


def test_a_followed_type_without_its_id_is_stored_as_invalid(client: TestClient, engine: sa.Engine, inbox: str) -> None:
    body = json.dumps({"type": "user.deleted", "data": {"deleted": True}})
    answer = client.post(PATH, content=body.encode(), headers=signed(body))
    assert (answer.status_code, answer.json()["status"]) == (200, "invalid")


@pytest.mark.parametrize(
    "body",
    ["not json", "", "[1, 2]", '"user.updated"', "null", '{"data": {}}', '{"type": 5}', '{"type": ""}',
     '{"type": null}', '{"type": "user.updated", "n": NaN}', '{"type": "user.updated", "n": 1e999}',
     '\ufeff{"type": "user.updated"}', "[" * 20_000 + "]" * 20_000],
)
def test_bodies_that_are_not_a_typed_json_object_get_400(refusing: TestClient, body: str) -> None:
    answer = refusing.post(PATH, content=body.encode(), headers=signed(body))
    assert answer.status_code == 400, answer.text


def test_an_unusable_svix_id_gets_400(refusing: TestClient) -> None:
    headers = signed(USER_UPDATED, msg_id="msg_" + "x" * 300)
    assert refusing.post(PATH, content=USER_UPDATED.encode(), headers=headers).status_code == 400


def test_the_exact_bytes_are_verified_and_the_parsed_body_stored(client: TestClient, engine: sa.Engine, inbox: str) -> None:
    body = '{ "type" : "user.created",\n  "data": {"id": "user_ü", "first_name": "Zo\\u00eb", "x": "a\\u0000b"} }'
    assert client.post(PATH, content=body.encode(), headers=signed(body)).status_code == 200
    [row] = stored_rows(engine, inbox)
    assert row["payload"] == {"type": "user.created", "data": {"id": "user_ü", "first_name": "Zoë", "x": "a\ufffdb"}}
    reserialised = json.dumps(json.loads(body))
    assert client.post(PATH, content=reserialised.encode(), headers=signed(body)).status_code == 401


# ------------------------------------------------------------------ size limits


def test_an_oversized_body_gets_413_and_nothing_is_stored(refusing: TestClient) -> None:
    body = json.dumps({"type": "user.updated", "data": {"id": "user_1", "pad": "x" * 70_000}})
    answer = refusing.post(PATH, content=body.encode(), headers=signed(body))
    assert answer.status_code == 413
    chunked = refusing.post(PATH, content=iter([body.encode()[:40_000], body.encode()[40_000:]]), headers=signed(body))
    assert chunked.status_code == 413


def test_a_streamed_body_under_the_limit_is_accepted(client: TestClient, engine: sa.Engine, inbox: str) -> None:
    data = USER_UPDATED.encode()
    answer = client.post(PATH, content=iter([data[:100], data[100:]]), headers=signed(USER_UPDATED))
    assert answer.status_code == 200
    assert len(stored_rows(engine, inbox)) == 1


def _post_raw(app: Starlette, headers: dict[str, str], chunk: bytes, chunks: int) -> tuple[int, int]:
    """POST through ASGI directly, the body in ``chunks`` chunks; returns (status, receive() calls made)."""
    calls = 0
    status = 0

    async def receive() -> dict:
        nonlocal calls
        calls += 1
        if calls > chunks:
            raise AssertionError("read past the end of the body")
        return {"type": "http.request", "body": chunk, "more_body": calls < chunks}

    async def send(message: dict) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": PATH, "raw_path": PATH.encode(), "query_string": b"", "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
    }
    anyio.run(app, scope, receive, send)
    return status, calls


def test_the_rest_of_an_oversized_body_is_never_read(engine: sa.Engine, inbox: str) -> None:
    app = create_app(engine, inbox, secret=SECRET, max_body_bytes=10_000)
    headers = signed(USER_UPDATED)
    # No Content-Length: a million 4 KiB chunks would be 4 GB; it stops after the third.
    assert _post_raw(app, headers, b"x" * 4096, chunks=1_000_000) == (413, 3)
    # A declared Content-Length over the limit: not one chunk is read.
    assert _post_raw(app, {**headers, "content-length": str(4096 * 1_000_000)}, b"x" * 4096, chunks=1_000_000) == (413, 0)
    assert _post_raw(app, {**headers, "content-length": "twelve"}, b"x", chunks=1)[0] == 400
    assert stored_rows(engine, inbox) == []


# ------------------------------------------------------------------ the database


def test_healthz(refusing: TestClient) -> None:
    answer = refusing.get("/healthz")
    assert (answer.status_code, answer.json()) == (200, {"database": "ok"})


def test_a_database_outage_is_503(inbox: str) -> None:
    dead = create_mirror_engine("postgresql://nobody@127.0.0.1:1/nothing")
    try:
        with TestClient(create_app(dead, inbox, secret=SECRET)) as client:
            answer = client.get("/healthz")
            assert (answer.status_code, answer.json()) == (503, {"database": "unavailable"})
            assert client.post(PATH, content=USER_UPDATED.encode(), headers=signed(USER_UPDATED)).status_code == 503
            assert client.post(PATH, content=b"{}", headers=signed(USER_UPDATED)).status_code == 401  # still a client fault
    finally:
        dead.dispose()


def test_only_post_is_served(refusing: TestClient) -> None:
    assert refusing.get(PATH).status_code == 405


def test_logs_hold_no_secret_signature_or_payload(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    body = json.dumps({"type": "user.updated", "data": {"id": "user_1", "first_name": "MARKER-in-the-payload"}})
    good = signed(body)
    with caplog.at_level(logging.DEBUG):
        assert client.post(PATH, content=body.encode(), headers=good).status_code == 200
        assert client.post(PATH, content=body.encode(), headers=signed(body, secret=OLD_SECRET)).status_code == 401
        assert client.post(PATH, content=b"MARKER-not-json", headers=signed("MARKER-not-json")).status_code == 400
    assert good["svix-id"] in caplog.text
    for secret_or_payload in ("MARKER", SECRET, SECRET.removeprefix("whsec_"), good["svix-signature"].removeprefix("v1,")):
        assert secret_or_payload not in caplog.text


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    ("secret", "message"),
    [("", "CLERK_WEBHOOK_SECRET is not set"), ("   ", "is not set"), ("sk_live_abc", "starts with whsec_"),
     ("whsec_", "not a valid"), ("whsec_!!!!", "not a valid")],
)
def test_serve_refuses_a_missing_or_malformed_secret_in_one_line(monkeypatch: pytest.MonkeyPatch, secret: str, message: str) -> None:
    monkeypatch.setenv("CLERK_WEBHOOK_SECRET", secret)
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/nothing")
    with pytest.raises(ConfigurationError, match=message) as raised:
        receiver.serve("127.0.0.1", 0)
    assert "\n" not in str(raised.value)
    if secret.strip().removeprefix("whsec_"):
        assert secret.strip().removeprefix("whsec_") not in str(raised.value)


def test_serve_refuses_an_unset_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLERK_WEBHOOK_SECRET", raising=False)
    with pytest.raises(ConfigurationError, match="CLERK_WEBHOOK_SECRET"):
        receiver.serve()


def test_serve_prepares_the_schema_then_runs_uvicorn(monkeypatch: pytest.MonkeyPatch, database_url: str, engine: sa.Engine, schema: str) -> None:
    monkeypatch.setenv("CLERK_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SYNC_SCHEMA", schema)
    served = {}
    monkeypatch.setattr(receiver.uvicorn, "run", lambda app, **options: served.update(app=app, **options))
    receiver.serve("127.0.0.1", 8999)
    assert (served["host"], served["port"]) == ("127.0.0.1", 8999)
    assert "webhook_events" in sa.inspect(engine).get_table_names(schema=schema)
    assert os.environ["SYNC_SCHEMA"] == schema
