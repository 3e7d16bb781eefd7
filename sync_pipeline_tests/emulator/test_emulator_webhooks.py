"""The emulator delivers Clerk's webhooks as Svix does: signed, at least once, best-effort order.

Every test delivers to a real local receiver (a plain HTTP server in a thread) that checks
each delivery with svix's own ``Webhook(secret).verify`` and records it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from svix.webhooks import Webhook, WebhookVerificationError

from sync_pipeline.emulator import ClerkStore, EmulatorServer, WebhookDispatcher, run_emulator

FAST_RETRIES = (0.01, 0.01, 0.01)
MESSAGE_ID = re.compile(r"msg_[0-9A-Za-z]{27}")


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool
    status: int  # what the receiver answered

    @property
    def id(self) -> str:
        return self.headers["svix-id"]

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def type(self) -> str:
        return self.event["type"]


class Receiver:
    """A webhook endpoint: verifies every POST with svix, records it, answers 204 (400 if unverified).

    ``answers`` holds statuses to give instead, one per request, before going back to 204.
    """

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.received: list[Received] = []
        self.answers: deque[int] = deque()
        self._condition = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (the http.server name)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {name.lower(): value for name, value in self.headers.items()}
                try:
                    Webhook(receiver.secret).verify(body, headers)
                    verified = True
                except WebhookVerificationError:
                    verified = False
                with receiver._condition:
                    status = receiver.answers.popleft() if receiver.answers else (204 if verified else 400)
                    receiver.received.append(Received(headers, body, verified, status))
                    receiver._condition.notify_all()
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/webhooks/clerk"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def wait_for(self, count: int, timeout: float) -> bool:
        with self._condition:
            return self._condition.wait_for(lambda: len(self.received) >= count, timeout)

    @property
    def accepted(self) -> list[Received]:
        return [r for r in self.received if 200 <= r.status < 300]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def secret() -> str:
    return new_secret()


@pytest.fixture
def receiver(secret: str) -> Iterator[Receiver]:
    endpoint = Receiver(secret)
    yield endpoint
    endpoint.close()


@pytest.fixture
def store() -> ClerkStore:
    return ClerkStore(users=20, organizations=3, seed=7)


@pytest.fixture
def dispatchers() -> Iterator[list[WebhookDispatcher]]:
    """Dispatchers a test makes, closed after it."""
    made: list[WebhookDispatcher] = []
    yield made
    for dispatcher in made:
        dispatcher.close()


def dispatch(
    made: list[WebhookDispatcher], store: ClerkStore | None, url: str, secret: str, **options: Any
) -> WebhookDispatcher:
    options.setdefault("retry_delays", FAST_RETRIES)
    options.setdefault("timeout", 5.0)
    dispatcher = WebhookDispatcher(url, secret, store=store, **options)
    made.append(dispatcher)
    return dispatcher


def make_users(store: ClerkStore, count: int) -> list[str]:
    return [store.create_user(email_addresses=[f"u{i}@example.com"], first_name=f"U{i}")["id"] for i in range(count)]


def every_kind_of_change(store: ClerkStore) -> list[str]:
    """One change of every kind; the event types it should produce, in order."""
    user = store.create_user(email_addresses=["ada@example.com"], first_name="Ada")
    store.update_user(user["id"], last_name="Lovelace")
    organization = store.create_organization("Analytical Engines")
    store.update_organization(organization["id"], name="Analytical Engines Ltd")
    membership = store.create_membership(organization["id"], user["id"], "org:member")
    store.update_membership(membership["id"], role="org:admin")
    store.delete_membership(membership["id"])
    store.delete_user(user["id"])
    store.delete_organization(organization["id"])
    return [
        "user.created", "user.updated", "organization.created", "organization.updated",
        "organizationMembership.created", "organizationMembership.updated", "organizationMembership.deleted",
        "user.deleted", "organization.deleted",
    ]


# -- what is delivered ----------------------------------------------------------------------


def test_every_mutation_kind_is_delivered_as_its_event(
    store: ClerkStore, receiver: Receiver, secret: str, dispatchers: list[WebhookDispatcher]
) -> None:
    dispatcher = dispatch(dispatchers, store, receiver.url, secret)
    expected = every_kind_of_change(store)
    assert receiver.received == []  # manual mode: nothing leaves before flush
    assert dispatcher.flush(timeout=5)

    assert [r.type for r in receiver.received] == expected
    assert [r.event for r in receiver.received] == store.events  # the envelopes, unchanged
    assert all(r.verified for r in receiver.received)
    assert all(MESSAGE_ID.fullmatch(r.id) for r in receiver.received)
    assert len({r.id for r in receiver.received}) == len(expected)
    for r in receiver.received:
        assert r.headers["content-type"] == "application/json"
        assert abs(int(r.headers["svix-timestamp"]) - time.time()) < 5
        assert r.headers["svix-signature"].startswith("v1,")
    deleted = receiver.received[expected.index("user.deleted")].event["data"]
    assert deleted["deleted"] is True and deleted["object"] == "user"
    stats = dispatcher.stats
    assert (stats.messages, stats.sent, stats.failed, stats.dropped, stats.duplicates) == (9, 9, 0, 0, 0)
    assert stats.by_status == {204: 9}


def test_signatures_verify_and_fail_with_another_secret(
    store: ClerkStore, receiver: Receiver, secret: str, dispatchers: list[WebhookDispatcher]
) -> None:
    dispatcher = dispatch(dispatchers, store, receiver.url, secret)
    make_users(store, 3)
    dispatcher.flush(timeout=5)
    assert len(receiver.received) == 3
    for r in receiver.received:
        Webhook(secret).verify(r.body, r.headers)  # raises if wrong
        with pytest.raises(WebhookVerificationError):
            Webhook(new_secret()).verify(r.body, r.headers)
        tampered = r.body.replace(b'"U', b'"V', 1)
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(tampered, r.headers)


def test_the_signature_covers_the_exact_bytes_sent(
    store: ClerkStore, receiver: Receiver, secret: str, dispatchers: list[WebhookDispatcher]
) -> None:
    """HMAC-SHA256 over ``{id}.{timestamp}.{body}`` keyed with the secret's base64 part (the README's rule)."""
    dispatcher = dispatch(dispatchers, store, receiver.url, secret)
    store.create_user(email_addresses=["zoë@example.com"], first_name="Zoë")  # non-ASCII, sent as UTF-8
    dispatcher.flush(timeout=5)
    (r,) = receiver.received
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{r.id}.{r.headers['svix-timestamp']}.".encode() + r.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert r.headers["svix-signature"] == f"v1,{expected}"
    assert "Zoë".encode() in r.body  # Unicode kept, like Clerk's, not \\u-escaped


def test_a_receiver_with_another_secret_refuses_every_delivery(
    store: ClerkStore, receiver: Receiver, dispatchers: list[WebhookDispatcher]
) -> None:
    dispatcher = dispatch(dispatchers, store, receiver.url, new_secret(), retry_delays=(0.01,))
    make_users(store, 2)
    dispatcher.flush(timeout=5)
    assert [r.verified for r in receiver.received] == [False] * 4  # each tried twice, refused (400)
    assert dispatcher.stats.failed == 2 and dispatcher.stats.sent == 0
    assert dispatcher.stats.by_status == {400: 4}


# -- Svix's ways: duplicates, drops, reordering, retries -------------------------------------


def test_a_duplicate_keeps_its_svix_id(
    store: ClerkStore, receiver: Receiver, secret: str, dispatchers: list[WebhookDispatcher]
) -> None:
    dispatcher = dispatch(dispatchers, store, receiver.url, secret, duplicate_rate=1.0, max_copies=2)
    make_users(store, 5)
    dispatcher.flush(timeout=5)
    copies = Counter(r.id for r in receiver.received)
    assert len(copies) == 5 and set(copies.values()) == {2}
    for message_id in copies:
        bodies = {r.body for r in receiver.received if r.id == message_id}
        assert len(bodies) == 1  # the same message, byte for byte
    assert all(r.verified for r in receiver.received)
    assert (dispatcher.stats.duplicates, dispatcher.stats.sent) == (5, 10)


def test_a_duplicate_rate_delivers_some_messages_more_than_once_repeatably(
    receiver: Receiver, secret: str, dispatchers: list[WebhookDispatcher]
) -> None:
    events = _events(30)

    def copies_per_message(seed: int) -> list[int]:
        dispatcher = dispatch(dispatchers, None, receiver.url, secret, duplicate_rate=0.5, seed=seed)
        messages = [dispatcher.submit(event) for event in events]
        return [message.copies for message in messages if message is not None]

    first, again = copies_per_message(3), copies_per_message(3)
    assert first == again  # the seed decides
    assert 1 in first and 2 <= max(first) <= 3  # some once, some twice or more, at most max_copies


def _events(count: int) -> list[dict[str, Any]]:
    """``count`` user.created events from a store no dispatcher listens to."""
    store = ClerkStore(users=5, organizations=1, seed=7)
    make_users(store, count)
    return store.events


def test_drop_rate_one_drops_everything(
    store: ClerkStore, receiver: Receiver, secret: str, dispatchers: list[WebhookDispatcher]
) -> None:
    dispatcher = dispatch(dispatchers, store, receiver.url, secret, drop_rate=1.0, duplicate_rate=1.0)
    make_users(store, 10)
    assert dispatcher.flush(timeout=5)
    assert receiver.received == []
    assert (dispatcher.stats.messages, dispatcher.stats.dropped, dispatcher.stats.sent) == (10, 10, 0)
    assert dispatcher.stats.attempts == 0


def test_reordering_changes_the_order_but_loses_nothing(
    store: ClerkStore, receiver: Receiver, secret: str, dispatchers: list[WebhookDispatcher]
) -> None:
    dispatcher = dispatch(dispatchers, store, receiver.url, secret, reorder_window=5, seed=11)
    make_users(store, 20)
    dispatcher.flush(timeout=5)
    emitted = [event["data"]["id"] for event in store.events]
    delivered = [r.event["data"]["id"] for r in receiver.received]
    assert delivered != emitted
    assert sorted(delivered) == sorted(emitted) and len(delivered) == 20
    for start in range(0, 20, 5):  # a message moves only within its window of 5
        assert set(delivered[start : start + 5]) == set(emitted[start : start + 5])
    assert all(r.verified for r in receiver.received)


def test_reordering_with_the_same_seed_repeats(receiver: Receiver, secret: str, dispatchers: list[WebhookDispatcher]) -> None:
    events = _events(12)

    def order(seed: int) -> list[int]:
        dispatcher = dispatch(dispatchers, None, receiver.url, secret, reorder_window=4, seed=seed)
        sequence = {}
        for event in events:
            message = dispatcher.submit(event)
            assert message is not None
            sequence[message.id] = message.sequence
        dispatcher.flush(timeout=5)
        return [sequence[r.id] for r in receiver.received if r.id in sequence]

    first = order(5)
    assert sorted(first) == list(range(12)) and first != list(range(12))
    assert order(5) == first


@pytest.mark.parametrize("failure", [500, 503, 302, 404])
def test_a_failed_delivery_is_retried_with_the_same_id(
    store: ClerkStore, receiver: Receiver, secret: str, dispatchers: list[WebhookDispatcher], failure: int
) -> None:
    receiver.answers.extend([failure, failure])
    dispatcher = dispatch(dispatchers, store, receiver.url, secret)
    make_users(store, 1)
    dispatcher.flush(timeout=5)
    assert [r.status for r in receiver.received] == [failure, failure, 204]
    assert len({r.id for r in receiver.received}) == 1
    assert all(r.verified for r in receiver.received)  # each attempt signed afresh
    stats = dispatcher.stats
    assert (stats.sent, stats.retried, stats.failed, stats.attempts) == (1, 2, 0, 3)
    assert stats.by_status == {failure: 2, 204: 1}


def test_a_retry_does_not_hold_up_the_next_messages(
    store: ClerkStore, receiver: Receiver, secret: str, dispatchers: list[WebhookDispatcher]
) -> None:
    receiver.answers.append(500)
    dispatcher = dispatch(dispatchers, store, receiver.url, secret, retry_delays=(0.2,))
    users = make_users(store, 3)
    dispatcher.flush(timeout=5)
    delivered = [r.event["data"]["id"] for r in receiver.accepted]
    assert delivered == [users[1], users[2], users[0]]  # the first one's retry came last


def test_delivery_is_given_up_after_the_last_retry(
    store: ClerkStore, receiver: Receiver, secret: str, dispatchers: list[WebhookDispatcher]
) -> None:
    receiver.answers.extend([500] * 10)
    dispatcher = dispatch(dispatchers, store, receiver.url, secret, retry_delays=(0.01, 0.01))
    make_users(store, 1)
    assert dispatcher.flush(timeout=5)
    assert len(receiver.received) == 3
    assert (dispatcher.stats.failed, dispatcher.stats.retried, dispatcher.stats.sent) == (1, 2, 0)


def test_a_connection_error_is_retried(store: ClerkStore, secret: str, dispatchers: list[WebhookDispatcher]) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # nothing listens there once closed
    dispatcher = dispatch(dispatchers, store, f"http://127.0.0.1:{port}/hooks", secret, retry_delays=(0.01, 0.01))
    make_users(store, 1)
    assert dispatcher.flush(timeout=5)
    assert (dispatcher.stats.connection_errors, dispatcher.stats.retried, dispatcher.stats.failed) == (3, 2, 1)
    assert dispatcher.stats.by_status == {}


# -- running it ---------------------------------------------------------------------------


def test_background_mode_delivers_within_a_second(
    store: ClerkStore, receiver: Receiver, secret: str, dispatchers: list[WebhookDispatcher]
) -> None:
    dispatcher = dispatch(dispatchers, store, receiver.url, secret, background=True)
    started = time.monotonic()
    store.create_user(email_addresses=["bg@example.com"])
    assert receiver.wait_for(1, timeout=1.0), "no delivery within a second"
    assert time.monotonic() - started < 1.0
    assert receiver.received[0].type == "user.created" and receiver.received[0].verified
    make_users(store, 5)
    assert receiver.wait_for(6, timeout=1.0)
    assert dispatcher.wait_idle(timeout=1.0)
    assert dispatcher.stats.sent == 6


def test_background_mode_with_a_reorder_window_sends_a_partial_window_soon(
    store: ClerkStore, receiver: Receiver, secret: str, dispatchers: list[WebhookDispatcher]
) -> None:
    dispatch(dispatchers, store, receiver.url, secret, background=True, reorder_window=10, reorder_linger_s=0.1)
    make_users(store, 3)  # a window of 10 never fills: it goes after the linger
    assert receiver.wait_for(3, timeout=1.0)
    make_users(store, 7)
    assert receiver.wait_for(10, timeout=1.0)
    assert len({r.id for r in receiver.received}) == 10


def test_close_stops_cleanly_and_takes_no_more_events(
    store: ClerkStore, receiver: Receiver, secret: str, dispatchers: list[WebhookDispatcher]
) -> None:
    dispatcher = dispatch(dispatchers, store, receiver.url, secret, background=True)
    make_users(store, 2)
    assert receiver.wait_for(2, timeout=1.0)
    thread = dispatcher._thread
    dispatcher.close()
    assert dispatcher.closed and thread is not None and not thread.is_alive()
    make_users(store, 2)  # the store still calls it: ignored
    time.sleep(0.05)
    assert len(receiver.received) == 2 and dispatcher.stats.messages == 2
    dispatcher.close()  # twice is fine


def test_close_abandons_what_is_still_queued_unless_drained(
    store: ClerkStore, receiver: Receiver, secret: str, dispatchers: list[WebhookDispatcher]
) -> None:
    dropped = dispatch(dispatchers, store, receiver.url, secret)
    drained = dispatch(dispatchers, store, receiver.url, secret)
    make_users(store, 3)
    dropped.close()
    drained.close(drain=True)
    assert (dropped.stats.abandoned, dropped.stats.sent) == (3, 0)
    assert (drained.stats.abandoned, drained.stats.sent) == (0, 3)


def test_the_secret_is_never_logged_nor_shown(
    store: ClerkStore, receiver: Receiver, secret: str, dispatchers: list[WebhookDispatcher], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.answers.extend([500] * 10)
    dispatcher = dispatch(dispatchers, store, receiver.url, secret, retry_delays=(0.01,))
    make_users(store, 1)
    dispatcher.flush(timeout=5)
    assert caplog.records  # the failures were logged...
    shown = caplog.text + repr(dispatcher) + repr(dispatcher.stats) + str(vars(dispatcher))
    assert secret not in shown and secret.removeprefix("whsec_") not in shown  # ...without the secret


def test_bad_options_are_refused(receiver: Receiver, secret: str) -> None:
    for options in ({"drop_rate": 1.5}, {"duplicate_rate": -0.1}, {"max_copies": 0}, {"retry_delays": (-1,)}):
        with pytest.raises(ValueError):
            WebhookDispatcher(receiver.url, secret, **options)
    with pytest.raises(ValueError):
        WebhookDispatcher(receiver.url, "not-a-whsec-secret")
    with pytest.raises(ValueError):
        WebhookDispatcher("127.0.0.1:9000/hooks", secret)


def test_run_emulator_needs_both_the_webhook_url_and_its_secret() -> None:
    with pytest.raises(ValueError):
        run_emulator(users=1, orgs=1, webhook_url="http://127.0.0.1:1/hooks")


# -- the admin API -------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    """An emulator of the test's own, free to change."""
    with EmulatorServer(users=20, orgs=3, seed=7, requests_per_10s=0) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def shared_server() -> Iterator[EmulatorServer]:
    """For the tests whose requests must change nothing."""
    with EmulatorServer(users=20, orgs=3, seed=7, requests_per_10s=0) as emulator:
        yield emulator


def admin_client(server: EmulatorServer, key: str | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=server.admin_url, headers={"Authorization": f"Bearer {key or server.secret_key}"}, timeout=5.0
    )


def test_the_admin_api_changes_data_and_produces_deliveries(server: EmulatorServer, receiver: Receiver, secret: str) -> None:
    dispatcher = server.deliver_webhooks_to(receiver.url, secret, background=False, retry_delays=FAST_RETRIES)
    with admin_client(server) as admin, httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {server.secret_key}"}, timeout=5.0
    ) as api:
        user = admin.post("/users", json={"email_addresses": ["grace@example.com"], "first_name": "Grace"})
        assert user.status_code == 200 and user.json()["object"] == "user"
        user_id = user.json()["id"]
        assert api.get(f"/users/{user_id}").json()["first_name"] == "Grace"

        updated = admin.patch(f"/users/{user_id}", json={"last_name": "Hopper", "public_metadata": {"rank": 1}})
        assert updated.json()["last_name"] == "Hopper"
        assert api.get(f"/users/{user_id}").json()["public_metadata"] == {"rank": 1}

        organization = admin.post("/organizations", json={"name": "Navy Labs"}).json()
        assert organization["object"] == "organization" and organization["members_count"] == 0
        renamed = admin.patch(f"/organizations/{organization['id']}", json={"name": "Naval Labs"}).json()
        assert renamed["name"] == "Naval Labs"

        membership = admin.post(
            f"/organizations/{organization['id']}/memberships", json={"user_id": user_id, "role": "org:member"}
        ).json()
        assert membership["object"] == "organization_membership"
        assert membership["public_user_data"]["user_id"] == user_id
        promoted = admin.patch(f"/memberships/{membership['id']}", json={"role": "org:admin"}).json()
        assert promoted["role"] == "org:admin"
        removed = admin.delete(f"/memberships/{membership['id']}").json()
        assert removed["id"] == membership["id"]
        assert api.get(f"/organizations/{organization['id']}/memberships").json()["total_count"] == 0

        deleted_user = admin.delete(f"/users/{user_id}").json()
        assert deleted_user["id"] == user_id and deleted_user["object"] == "user" and deleted_user["deleted"] is True
        assert api.get(f"/users/{user_id}").status_code == 404
        deleted = admin.delete(f"/organizations/{organization['id']}").json()
        assert deleted["deleted"] is True and deleted["object"] == "organization"

    assert dispatcher.flush(timeout=5)
    assert [r.type for r in receiver.received] == [
        "user.created", "user.updated", "organization.created", "organization.updated",
        "organizationMembership.created", "organizationMembership.updated", "organizationMembership.deleted",
        "user.deleted", "organization.deleted",
    ]
    assert all(r.verified for r in receiver.received)
    assert server.stats.requests_under("/_emulator") == 0  # not counted as Clerk API traffic


def test_the_admin_api_delivers_in_the_background(server: EmulatorServer, receiver: Receiver, secret: str) -> None:
    server.deliver_webhooks_to(receiver.url, secret, retry_delays=FAST_RETRIES)
    with admin_client(server) as admin:
        user_id = admin.post("/users", json={"first_name": "Background"}).json()["id"]
        existing = server.store.iter_organizations().__next__()["id"]
        admin.post(f"/organizations/{existing}/memberships", json={"user_id": user_id})
    assert receiver.wait_for(2, timeout=1.0)
    assert [r.type for r in receiver.received] == ["user.created", "organizationMembership.created"]


def test_stopping_the_server_closes_its_dispatchers(receiver: Receiver, secret: str) -> None:
    with EmulatorServer(users=5, orgs=1) as server:
        dispatcher = server.deliver_webhooks_to(receiver.url, secret)
    assert dispatcher.closed


@pytest.mark.parametrize("authorization", [None, "Bearer sk_test_wrong", "sk_test_emulator", "Basic sk_test_emulator"])
def test_the_admin_api_refuses_a_missing_or_wrong_key(shared_server: EmulatorServer, authorization: str | None) -> None:
    server = shared_server
    headers = {} if authorization is None else {"Authorization": authorization}
    some_user = next(server.store.iter_users())["id"]
    attempts = [
        httpx.post(f"{server.admin_url}/users", json={"first_name": "Mallory"}, headers=headers),
        httpx.patch(f"{server.admin_url}/users/{some_user}", json={"first_name": "Mallory"}, headers=headers),
        httpx.delete(f"{server.admin_url}/users/{some_user}", headers=headers),
    ]
    assert [response.status_code for response in attempts] == [401, 401, 401]
    assert attempts[0].json()["errors"][0]["code"] == "authentication_invalid"
    assert server.store.events == [] and server.store.get_user(some_user) is not None


def test_the_admin_routes_are_not_under_v1(shared_server: EmulatorServer) -> None:
    server = shared_server
    headers = {"Authorization": f"Bearer {server.secret_key}"}
    response = httpx.post(f"{server.base_url}/_emulator/users", json={"first_name": "X"}, headers=headers)
    assert response.status_code == 404
    assert httpx.post(f"{server.base_url}/users", json={"first_name": "X"}, headers=headers).status_code == 405
    assert server.store.events == []


def test_the_admin_api_answers_errors_as_clerk_does(shared_server: EmulatorServer) -> None:
    server = shared_server
    with admin_client(server) as admin:
        unknown_field = admin.post("/users", json={"shoe_size": 44})
        assert unknown_field.status_code == 422 and unknown_field.json()["errors"][0]["meta"]["param_name"] == "shoe_size"
        assert admin.patch("/users/user_missing", json={"first_name": "X"}).status_code == 404
        assert admin.delete("/memberships/orgmem_missing").status_code == 404
        assert admin.post("/organizations", content=b"not json").status_code == 422
        assert admin.post("/organizations", json=["a list"]).status_code == 422
        assert admin.post("/organizations", json={}).status_code == 422  # name is required
        user_id = next(server.store.iter_users())["id"]
        no_user = admin.post(f"/organizations/{next(server.store.iter_organizations())['id']}/memberships", json={})
        assert no_user.status_code == 422
        assert admin.patch(f"/users/{user_id}", json={"id": "user_other"}).status_code == 422
        assert admin.patch(f"/users/{user_id}", json={"shoe_size": 44}).status_code == 422
        assert admin.get("/users").status_code == 405
        assert admin.post("/nothing_here", json={}).status_code == 404
    assert server.store.events == []
