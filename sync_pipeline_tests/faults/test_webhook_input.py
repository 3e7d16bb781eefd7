"""Webhook input: whatever arrives, nothing unsigned is stored and no client fault is a 5xx;
whatever order and number of deliveries, the mirror ends where one full sync puts it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
import random
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import sqlalchemy as sa
from dagster import SkipReason, build_sensor_context
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from svix.webhooks import Webhook

from sync_pipeline.defs.resources import MirrorDatabase
from sync_pipeline.defs.sensors import clerk_webhook_sensor
from sync_pipeline.emulator.objects import to_json
from sync_pipeline.emulator.webhooks import new_message_id
from sync_pipeline.mirror.database import upgrade_schema
from sync_pipeline.model import ENTITIES, MEMBERSHIPS, ORGANIZATIONS
from sync_pipeline.webhooks import inbox
from sync_pipeline.webhooks.receiver import WEBHOOK_PATH, create_app
from sync_pipeline_tests.faults.report import FaultReport
from sync_pipeline_tests.faults.support import (
    ReceiverProcess,
    cli_environment,
    failure,
    mirror_against_clerk,
    run,
    run_loadgen,
)
from sync_pipeline_tests.harness import SyncHarness

with warnings.catch_warnings():  # starlette nudges towards httpx2; httpx is what we have
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

SECRET = "whsec_" + base64.b64encode(b"fault-suite-webhook-secret-0123").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"somebody-else-s-signing-secret!!").decode()
LIMIT = 64 * 1024


def sign(body: bytes | str, *, secret: str = SECRET, msg_id: str | None = None, at: datetime | None = None) -> dict[str, str]:
    """Svix's headers for ``body``. Bytes that are not UTF-8 are signed as bytes (svix only signs text)."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(timezone.utc)
    timestamp = str(math.floor(at.timestamp()))
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        signature = Webhook(secret).sign(msg_id, at, text)
    except UnicodeDecodeError:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
        signature = "v1," + base64.b64encode(digest).decode()
    return {"svix-id": msg_id, "svix-timestamp": timestamp, "svix-signature": signature}


def stored(engine: sa.Engine, schema: str) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.text(f'SELECT count(*) FROM "{schema}".webhook_events')).scalar_one()


@pytest.fixture(scope="module")
def receiver_schema(engine: sa.Engine) -> Iterator[str]:
    name = f"t_fuzz_{uuid.uuid4().hex[:8]}"
    upgrade_schema(engine, name)
    yield name
    with engine.begin() as connection:
        connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))


@pytest.fixture(scope="module")
def receiver(engine: sa.Engine, receiver_schema: str) -> Iterator[TestClient]:
    # raise_server_exceptions: a crash inside the receiver fails the test instead of becoming a 500.
    with TestClient(create_app(engine, receiver_schema, secret=SECRET, max_body_bytes=LIMIT), raise_server_exceptions=True) as client:
        yield client


# ------------------------------------------------------------------ fuzzing the receiver

JSON_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from(["\x00", "\ufeff", "\u202e", "🙂"]),
    max_size=30,
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False, allow_infinity=False) | JSON_TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(JSON_TEXT, children, max_size=4),
    max_leaves=12,
)
EVENT_TYPES = st.sampled_from(
    ["user.created", "user.updated", "user.deleted", "organization.updated", "organizationMembership.deleted",
     "session.created", "", "user.*", "USER.UPDATED"]
)


@st.composite
def payloads(draw) -> bytes:  # noqa: ANN001
    """Bodies of every kind: Clerk-like events, any JSON, other encodings, raw bytes, big ones."""
    kind = draw(st.sampled_from(["event", "event", "event", "json", "text", "bytes", "big", "deep", "raw escapes"]))
    if kind == "event":
        event = {"type": draw(EVENT_TYPES | JSON_TEXT), "object": "event", "data": draw(JSON_VALUES)}
        if draw(st.booleans()):
            event["data"] = {"id": draw(JSON_TEXT | st.integers()), **draw(st.dictionaries(JSON_TEXT, JSON_VALUES, max_size=3))}
        if draw(st.booleans()):
            event["timestamp"] = draw(st.integers(min_value=-(2**63), max_value=2**63) | JSON_TEXT | st.floats())
        text = json.dumps(event, ensure_ascii=draw(st.booleans()))
        return text.encode(draw(st.sampled_from(["utf-8", "utf-8", "utf-16", "utf-8-sig"])))
    if kind == "json":
        return json.dumps(draw(JSON_VALUES)).encode()
    if kind == "text":
        encoding = draw(st.sampled_from(["utf-8", "latin-1", "utf-16-le", "utf-32", "cp1252"]))
        return draw(st.text(max_size=200)).encode(encoding, errors="replace")
    if kind == "bytes":
        return draw(st.binary(max_size=500))
    if kind == "big":  # around the size limit
        size = draw(st.sampled_from([LIMIT - 200, LIMIT, LIMIT + 1, 3 * LIMIT]))
        return json.dumps({"type": "user.updated", "data": {"id": "user_big", "pad": "x" * size}}).encode()[: size + 60]
    if kind == "deep":
        depth = draw(st.sampled_from([50, 900, 5_000, 30_000]))
        return ('{"type": "user.updated", "data": ' + "[" * depth + "]" * depth + "}").encode()
    # JSON escapes Postgres jsonb refuses, and numbers Python refuses to read
    return draw(
        st.sampled_from(
            [b'{"type": "user.updated", "data": {"id": "user_\\u0000", "x": "\\ud800"}}',
             b'{"type": "user.updated", "\\u0000": 1}',
             b'{"type": "user.updated", "n": ' + b"9" * 5_000 + b"}",
             b'{"type": "user.updated", "n": 1e400}',
             b'{"type": "user.updated", "n": -0.0, "m": 1E-400}',
             b'{"type": "user.updated", "type": "user.deleted"}',
             b'{"type": "user.updated"} trailing']
        )
    )


HEADER_BYTES = st.binary(max_size=80).map(lambda b: bytes(c for c in b if c not in (10, 13, 0)))


@st.composite
def headers_for(draw, body: bytes) -> tuple[str, dict]:  # noqa: ANN001
    """How the request is signed: properly, or in one of the ways an attacker or a bug would."""
    mode = draw(st.sampled_from(["valid", "valid", "none", "garbage", "other secret", "stale", "future", "tampered"]))
    msg_id = draw(st.sampled_from(["msg_"] * 4 + ["msg_ünï ", "", "x" * 300, "id\x7f"])) + uuid.uuid4().hex
    now = datetime.now(timezone.utc)
    if mode == "none":
        return mode, {}
    if mode == "garbage":
        return mode, {"svix-id": draw(HEADER_BYTES), "svix-timestamp": draw(HEADER_BYTES | st.just(b"1e9")), "svix-signature": draw(HEADER_BYTES)}
    if mode == "other secret":
        return mode, sign(body, secret=OTHER_SECRET, msg_id=msg_id)
    if mode == "stale":
        return mode, sign(body, msg_id=msg_id, at=now - timedelta(minutes=draw(st.integers(6, 10_000))))
    if mode == "future":
        return mode, sign(body, msg_id=msg_id, at=now + timedelta(minutes=draw(st.integers(6, 10_000))))
    if mode == "tampered":
        return mode, sign(body + b" ", msg_id=msg_id)
    return mode, sign(body, msg_id=msg_id)


FUZZ_EXAMPLES = 300


def test_a_fuzzed_receiver_never_fails_on_a_client_and_never_stores_the_unsigned(
    receiver: TestClient, engine: sa.Engine, receiver_schema: str, fault_report: FaultReport
) -> None:
    """Random bodies, headers, sizes and encodings, signed or not: 200/400/401/413 only, and only
    a properly signed, fresh delivery of a typed JSON object is ever stored."""
    outcomes: Counter[tuple[str, int]] = Counter()

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        derandomize=True,  # the same examples on every run: never flaky
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(data=st.data())
    def one_request(data) -> None:  # noqa: ANN001
        body = data.draw(payloads(), label="body")
        mode, headers = data.draw(headers_for(body), label="signing")
        extra = data.draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "content-type": st.sampled_from([b"text/plain", b"application/json; charset=utf-16", b"\xff\xfe"]),
                    "content-encoding": st.sampled_from([b"gzip", b"br", b"identity"]),
                    "x-forwarded-for": HEADER_BYTES,
                },
            ),
            label="extra headers",
        )
        request_headers = {
            k: v if isinstance(v, bytes) else v.encode("latin-1", errors="replace") for k, v in {**headers, **extra}.items()
        }
        before = stored(engine, receiver_schema)

        answer = receiver.post(WEBHOOK_PATH, content=body, headers=request_headers)

        added = stored(engine, receiver_schema) - before
        outcomes[(mode, answer.status_code)] += 1
        assert answer.status_code < 500, (answer.status_code, answer.text)
        assert answer.status_code in (200, 400, 401, 413), answer.status_code
        if mode != "valid":
            fault_report.unsigned_stored(added)
            assert answer.status_code in (400, 401, 413), mode
            assert added == 0, mode
        elif answer.status_code == 200:
            assert added == 1 and answer.json()["status"] in ("pending", "ignored", "invalid")
        else:
            assert added == 0

    one_request()
    fault_report.tried("webhook fuzz requests", sum(outcomes.values()))
    # The examples reached every branch: stored, refused as unsigned, as not JSON, as too big.
    assert outcomes[("valid", 200)] >= 20, outcomes
    assert sum(n for (mode, status), n in outcomes.items() if mode != "valid" and status == 401) >= 50, outcomes
    assert sum(n for (_, status), n in outcomes.items() if status == 400) >= 10, outcomes
    assert sum(n for (_, status), n in outcomes.items() if status == 413) >= 3, outcomes


def test_ids_postgres_cannot_hold_are_stored_replaced_not_answered_500(
    receiver: TestClient, engine: sa.Engine, receiver_schema: str
) -> None:
    """Found by the fuzzer: a NUL or a lone surrogate in data.id made the insert fail (500, so Svix
    retried forever). They become U+FFFD in the payload and in the columns read from it."""
    for raw in (b'{"type": "user.updated", "data": {"id": "user_\\u0000x"}}', b'{"type": "user.up\\u0000dated", "data": {"id": "user_\\ud800"}}'):
        headers = sign(raw)
        answer = receiver.post(WEBHOOK_PATH, content=raw, headers=headers)
        assert answer.status_code == 200, answer.text
        with engine.connect() as connection:
            row = connection.execute(
                sa.text(f'SELECT event_type, user_id, payload FROM "{receiver_schema}".webhook_events WHERE svix_id = :id'),
                {"id": headers["svix-id"]},
            ).one()
        assert "\x00" not in row.event_type and "\x00" not in (row.user_id or "")
        assert row.payload["data"]["id"] in ("user_\ufffdx", "user_\ufffd")


def test_a_replayed_old_signature_is_refused(receiver: TestClient, engine: sa.Engine, receiver_schema: str, fault_report: FaultReport) -> None:
    """An attacker who captured a genuine delivery can neither replay it later nor re-date it."""
    body = json.dumps({"type": "user.deleted", "data": {"id": "user_victim", "deleted": True, "object": "user"}})
    captured = sign(body, msg_id="msg_captured", at=datetime.now(timezone.utc) - timedelta(minutes=6))
    before = stored(engine, receiver_schema)

    assert receiver.post(WEBHOOK_PATH, content=body.encode(), headers=captured).status_code == 401
    redated = {**captured, "svix-timestamp": str(int(time.time()))}  # a fresh timestamp, the old signature
    assert receiver.post(WEBHOOK_PATH, content=body.encode(), headers=redated).status_code == 401
    other_id = {**captured, "svix-id": "msg_other", "svix-timestamp": str(int(time.time()))}
    assert receiver.post(WEBHOOK_PATH, content=body.encode(), headers=other_id).status_code == 401

    assert stored(engine, receiver_schema) == before
    # A genuine redelivery within the window is welcome, and stays one row.
    fresh = sign(body, msg_id="msg_fresh_replay")
    assert receiver.post(WEBHOOK_PATH, content=body.encode(), headers=fresh).json()["duplicate"] is False
    assert receiver.post(WEBHOOK_PATH, content=body.encode(), headers=fresh).json()["duplicate"] is True
    assert stored(engine, receiver_schema) == before + 1
    fault_report.tried("replayed signatures", 3)


def test_the_receiver_refuses_a_body_over_its_size_limit(receiver: TestClient, engine: sa.Engine, receiver_schema: str) -> None:
    before = stored(engine, receiver_schema)
    for size in (LIMIT + 1, 10 * LIMIT):
        body = json.dumps({"type": "user.updated", "data": {"id": "user_1", "pad": "x" * size}}).encode()
        assert receiver.post(WEBHOOK_PATH, content=body, headers=sign(body)).status_code == 413
        streamed = receiver.post(WEBHOOK_PATH, content=iter([body[:LIMIT], body[LIMIT:]]), headers=sign(body))
        assert streamed.status_code == 413
    assert stored(engine, receiver_schema) == before


# ------------------------------------------- many deliveries, under load, while the sensor drains

# 10,000 deliveries, 30% of them redeliveries of an event already sent. FAULT_SUITE_DELIVERIES
# changes the total (the split stays 70/30), for a quicker local run or a longer soak.
DELIVERIES = int(os.environ.get("FAULT_SUITE_DELIVERIES", "10000"))
DUPLICATES = DELIVERIES * 3 // 10
UNIQUE_EVENTS = DELIVERIES - DUPLICATES
CONCURRENCY = 8
BATCH_SIZE = 2_000
LOAD_SECONDS_MAX = 120.0


def make_events(harness: SyncHarness, count: int, seed: int) -> list[dict]:
    """``count`` changes in Clerk, of every kind the mirror follows, and the events they emit."""
    store = harness.emulator.store
    rng = random.Random(seed)
    first = len(store.events)
    users = [u["id"] for u in store.iter_users()]
    organizations = [o["id"] for o in store.iter_organizations()]
    memberships = [m["id"] for m in store.iter_memberships()]
    deleted = {"memberships": 0, "users": 0}
    while len(store.events) - first < count:
        roll = rng.random()
        try:
            if roll < 0.60:
                store.update_user(rng.choice(users), first_name=f"Name {rng.randrange(10**6)}", public_metadata={"n": rng.randrange(100)})
            elif roll < 0.72:
                store.update_organization(rng.choice(organizations), name=f"Org {rng.randrange(10**6)}")
            elif roll < 0.86:
                store.update_membership(rng.choice(memberships), role=rng.choice(["org:admin", "org:member", "org:billing_manager"]))
            elif roll < 0.90:
                users.append(store.create_user(email_addresses=[f"u{rng.randrange(10**9)}@example.com"], first_name="Created")["id"])
            elif roll < 0.997:
                memberships.append(store.create_membership(rng.choice(organizations), rng.choice(users))["id"])
            elif roll < 0.999 and deleted["memberships"] < 10:
                # Deletions stay few: every event is in Clerk before the first delivery, so the first
                # partial run already sees its users' final state, and a run deleting more than 10% of
                # a table would meet the delete guard (rightly: that is a mass deletion).
                store.delete_membership(memberships.pop(rng.randrange(len(memberships))))
                deleted["memberships"] += 1
            elif roll >= 0.999 and deleted["users"] < 5:
                store.delete_user(users.pop(rng.randrange(len(users))))
                memberships = [m["id"] for m in store.iter_memberships()]  # its memberships went with it
                deleted["users"] += 1
        except (ValueError, LookupError):  # already a member, or gone: draw again
            memberships = [m["id"] for m in store.iter_memberships()]
    return store.events[first : first + count]


def live_rows(harness: SyncHarness, schema: str, entity: str) -> dict[str, dict]:
    """Every live row of a mirror table, as compared between mirrors (sync bookkeeping left out)."""
    frame = harness.query(f'SELECT * FROM "{schema}".{entity} WHERE deleted_at IS NULL')
    rows = {}
    for record in frame.to_dict("records"):
        for column in ("synced_at", "deleted_at"):
            record.pop(column, None)
        record["raw"] = record["raw"] if isinstance(record["raw"], dict) else json.loads(record["raw"])
        rows[record["id"]] = {k: (None if v != v else v) for k, v in record.items()}  # NaN -> None
    return rows


def drain_with_the_sensor(harness: SyncHarness, report: FaultReport, stop: threading.Event, log: dict) -> None:
    """Tick the real sensor and run what it requests, as the daemon would, until told to stop and nothing is pending."""
    resources = {"mirror_db": MirrorDatabase(database_url=harness.database_url, db_schema=harness.schema)}
    cursor = None
    while True:
        with build_sensor_context(instance=harness.instance, cursor=cursor, resources=resources) as context:
            result = clerk_webhook_sensor(context)
        if isinstance(result, SkipReason) or not result.run_requests:
            if stop.is_set():
                return
            time.sleep(0.2)
            continue
        cursor = result.cursor
        for request in result.run_requests:
            answered = len(request.run_config["ops"]["sync_scope"]["config"]["webhook_event_ids"])
            outcome = run(harness, report, job="partial_sync_job", run_config=request.run_config)
            if not outcome.success:
                log["failures"].append(failure(outcome))
                return
            log["runs"] += 1
            log["drained"] += answered


def test_10000_shuffled_deliveries_with_30_percent_duplicates_under_load_converge_to_one_full_sync(
    harness: SyncHarness, fault_report: FaultReport, tmp_path, monkeypatch: pytest.MonkeyPatch  # noqa: ANN001
) -> None:
    # Each partial run re-reads every user its batch names (one request per user for the memberships):
    # with a few hundred users, fewer and larger batches drain the same events in far less time.
    monkeypatch.setenv("SYNC_WEBHOOK_BATCH_SIZE", str(BATCH_SIZE))
    assert run(harness, fault_report).success  # the mirror in step, the inbox table there
    events = make_events(harness, UNIQUE_EVENTS, seed=10)
    messages = [(new_message_id(), to_json(event)) for event in events]
    rng = random.Random(30)
    deliveries = messages + [rng.choice(messages) for _ in range(DUPLICATES)]
    rng.shuffle(deliveries)

    receiver = ReceiverProcess(cli_environment(harness, CLERK_WEBHOOK_SECRET=SECRET), tmp_path / "receiver.log")
    stop, log = threading.Event(), {"runs": 0, "drained": 0, "failures": []}
    try:
        receiver.wait_ready()
        drainer = threading.Thread(target=drain_with_the_sensor, args=(harness, fault_report, stop, log))
        drainer.start()
        try:
            load = run_loadgen(
                receiver.url + WEBHOOK_PATH, deliveries, secret=SECRET, path=tmp_path / "deliveries.jsonl",
                concurrency=CONCURRENCY, max_seconds=LOAD_SECONDS_MAX,
            )
            out, err = load.communicate(timeout=LOAD_SECONDS_MAX + 60)
        finally:
            stop.set()
            last_delivery = time.monotonic()
            drainer.join(timeout=300)
            drained = time.monotonic()
        big = json.dumps({"type": "user.updated", "data": {"id": "user_1", "pad": "x" * (1 << 20)}})
        oversized = httpx.post(receiver.url + WEBHOOK_PATH, content=big.encode(), headers=sign(big), timeout=30).status_code
    finally:
        receiver_output = receiver.stop()
    figures = json.loads(out) if out.strip() else {"error": err}
    assert "requests" in figures, figures  # the load generator ran to its end
    fault_report.replayed(figures["requests"])

    assert not log["failures"], log["failures"]
    assert figures["requests"] == len(deliveries) and figures["statuses"] == {"200": len(deliveries)}, figures
    assert oversized == 413  # over real HTTP too, before a byte of it is stored
    assert SECRET not in receiver_output and SECRET.removeprefix("whsec_") not in receiver_output
    # Each event stored once, every delivery counted, nothing left pending.
    counts = harness.query("SELECT count(*) AS events, sum(delivery_count) AS deliveries, count(*) FILTER (WHERE status = 'pending') AS pending FROM {schema}.webhook_events")
    assert (counts["events"][0], counts["deliveries"][0], counts["pending"][0]) == (UNIQUE_EVENTS, len(deliveries), 0)

    # The same mirror as one full sync of the same Clerk into an empty schema.
    full_schema = f"t_full_{uuid.uuid4().hex[:8]}"
    try:
        assert run(harness, fault_report, schema=full_schema).success
        for entity in ENTITIES:
            assert live_rows(harness, harness.schema, entity) == live_rows(harness, full_schema, entity), entity
    finally:
        with harness.engine.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{full_schema}" CASCADE'))
    difference = mirror_against_clerk(harness)
    fault_report.lost(sum(len(ids) for ids in difference.missing.values()))
    assert not any(difference.missing.values()) and not any(difference.extra.values())

    fault_report.receiver_load = {
        "requests": figures["requests"], "seconds": figures["seconds"], "rps": figures["rps"],
        "p50_ms": figures["p50_ms"], "p99_ms": figures["p99_ms"], "errors": sum(figures["errors"].values()),
        "drained": log["drained"], "runs": log["runs"],
    }
    fault_report.webhook_convergence = {
        "deliveries": len(deliveries), "duplicates": DUPLICATES, "events": UNIQUE_EVENTS,
        "send_seconds": figures["seconds"], "rps": figures["rps"], "drain_seconds": drained - last_delivery,
    }
    print(f"\nreceiver: {figures}; sensor: {log['runs']} partial run(s) answered {log['drained']} event(s)")


# Found here: a membership event put only its user in the partial sync's scope, so the
# organization's members_count (on its row, and embedded in each of its memberships) stayed
# stale until the next full sync.


def deliver_and_tick(harness: SyncHarness, events: list[dict]):  # noqa: ANN201
    """Store these Clerk events in the inbox as the receiver would, and tick the sensor once: its one run request."""
    for event in events:
        inbox.store_delivery(harness.engine, harness.schema, svix_id=new_message_id(), svix_timestamp=None, payload=event)
    with build_sensor_context(
        instance=harness.instance, resources={"mirror_db": MirrorDatabase(database_url=harness.database_url, db_schema=harness.schema)}
    ) as context:
        (request,) = clerk_webhook_sensor(context).run_requests
    return request


def test_membership_events_leave_no_organization_stale(harness: SyncHarness, fault_report: FaultReport) -> None:
    assert run(harness, fault_report).success
    store = harness.emulator.store
    organizations = [o["id"] for o in store.iter_organizations()]
    users = [u["id"] for u in store.iter_users()]
    first = len(store.events)
    store.create_membership(organizations[7], users[50])
    store.delete_membership(next(m["id"] for m in store.iter_memberships() if m["organization"]["id"] == organizations[3]))
    request = deliver_and_tick(harness, store.events[first:])

    assert run(harness, fault_report, job="partial_sync_job", run_config=request.run_config).success
    difference = mirror_against_clerk(harness)
    assert not difference.stale[ORGANIZATIONS] and not difference.stale[MEMBERSHIPS], difference.stale


def test_a_user_deleted_leaves_no_organization_stale(harness: SyncHarness, fault_report: FaultReport) -> None:
    """user.deleted names no organization, and Clerk may send no membership event for the memberships that go."""
    assert run(harness, fault_report).success
    store = harness.emulator.store
    member = next(m["public_user_data"]["user_id"] for m in store.iter_memberships())
    organizations = {m["organization"]["id"] for m in store.iter_memberships() if m["public_user_data"]["user_id"] == member}
    first = len(store.events)
    store.delete_user(member)
    assert [e["type"] for e in store.events[first:]] == ["user.deleted"]
    request = deliver_and_tick(harness, store.events[first:])

    result = run(harness, fault_report, job="partial_sync_job", run_config=request.run_config)

    assert result.success, failure(result)
    assert set(result.output_for_node("sync_scope").scope.organization_ids) == organizations
    difference = mirror_against_clerk(harness)
    assert not any(difference.missing.values()) and not any(difference.extra.values()), difference
    assert not difference.stale[ORGANIZATIONS] and not difference.stale[MEMBERSHIPS], difference.stale
