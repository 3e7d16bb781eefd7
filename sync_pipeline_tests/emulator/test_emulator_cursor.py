"""GET /users walked by ``starting_after``: through a crowd of users sharing one millisecond,
within ``created_at`` windows under both readings of the bounds, and its 422s."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sync_pipeline.emulator import EmulatorServer
from sync_pipeline_tests.emulator.emulator_http import SEED, http_client

USERS, CROWD = 400, 150


@pytest.fixture(scope="module")
def crowded() -> Iterator[EmulatorServer]:
    """400 users, 150 of them (the middle of creation order) created in one millisecond."""
    with EmulatorServer(users=USERS, orgs=10, seed=SEED, requests_per_10s=0, users_in_one_millisecond=CROWD) as server:
        yield server


@pytest.fixture
def client(crowded: EmulatorServer) -> Iterator[httpx.Client]:
    crowded.settings.created_at_bounds_inclusive = False
    with http_client(crowded) as http:
        yield http


def walk(client: httpx.Client, *, limit: int, **params: Any) -> list[dict[str, Any]]:
    """Every user the cursor reaches, page by page, until a short page."""
    users: list[dict[str, Any]] = []
    while True:
        cursor = {"starting_after": users[-1]["id"]} if users else {}
        response = client.get("/users", params={**params, **cursor, "limit": limit})
        response.raise_for_status()
        users.extend(response.json())
        if len(response.json()) < limit:
            return users


def crowd_time(crowded: EmulatorServer) -> int:
    times = [user["created_at"] for user in crowded.store.iter_users()]
    (shared,) = {t for t in times if times.count(t) > 1}
    return shared


def test_the_crowd_shares_one_millisecond_in_the_middle(crowded: EmulatorServer) -> None:
    times = [user["created_at"] for user in crowded.store.iter_users()]
    shared = crowd_time(crowded)
    assert times.count(shared) == CROWD
    first = times.index(shared)
    assert 0 < first and first + CROWD < USERS  # neither at the start nor at the end
    assert times == sorted(times)  # creation order is still created_at order


@pytest.mark.parametrize("order_by", [None, "created_at", "+created_at", "-created_at"])
def test_created_at_order_breaks_ties_by_id(client: httpx.Client, order_by: str | None) -> None:
    params = {"order_by": order_by} if order_by else {}
    users = walk(client, limit=500, **params)
    keys = [(user["created_at"], user["id"]) for user in users]
    descending = order_by in (None, "-created_at")  # no sign means +, the default is -created_at
    assert keys == sorted(keys, reverse=descending)
    assert len(users) == USERS


@pytest.mark.parametrize("limit", [1, 7, 50, 149, 150, 151, 500])
@pytest.mark.parametrize("order_by", ["+created_at", "-created_at"])
def test_the_cursor_walks_through_the_crowd_without_loss_or_repeat(
    crowded: EmulatorServer, client: httpx.Client, limit: int, order_by: str
) -> None:
    walked = [user["id"] for user in walk(client, limit=limit, order_by=order_by)]
    assert len(walked) == len(set(walked)) == USERS
    assert set(walked) == {user["id"] for user in crowded.store.iter_users()}
    by_offset = [user["id"] for user in client.get("/users", params={"order_by": order_by, "limit": 500}).json()]
    assert walked == by_offset


@pytest.mark.parametrize("inclusive", [False, True])
def test_windows_split_at_the_crowd_cover_everyone_once(
    crowded: EmulatorServer, client: httpx.Client, inclusive: bool
) -> None:
    crowded.settings.created_at_bounds_inclusive = inclusive
    shared = crowd_time(crowded)
    everyone = {user["id"] for user in crowded.store.iter_users()}

    def window(**bounds: int) -> list[str]:
        walked = [user["id"] for user in walk(client, limit=40, order_by="+created_at", **bounds)]
        counted = client.get("/users/count", params=bounds).json()["total_count"]
        assert counted == len(walked) == len(set(walked))
        return walked

    # The crowd's millisecond alone: exclusive bounds need one either side, inclusive ones not.
    alone = window(created_at_after=shared, created_at_before=shared) if inclusive else window(
        created_at_after=shared - 1, created_at_before=shared + 1
    )
    assert len(alone) == CROWD
    # Three disjoint windows under each reading: before the crowd, the crowd, after it.
    if inclusive:
        pieces = [window(created_at_before=shared - 1), alone, window(created_at_after=shared + 1)]
    else:
        pieces = [window(created_at_before=shared), alone, window(created_at_after=shared)]
    walked = [user_id for piece in pieces for user_id in piece]
    assert len(walked) == len(set(walked)) == len(everyone) and set(walked) == everyone
    # On the bound itself: the inclusive reading keeps the crowd, the exclusive one drops it.
    at_bound = client.get("/users/count", params={"created_at_after": shared}).json()["total_count"]
    after_crowd = USERS - len(pieces[0]) - CROWD
    assert at_bound == (after_crowd + CROWD if inclusive else after_crowd)


def test_a_deleted_users_id_still_marks_its_place(crowded: EmulatorServer) -> None:
    with EmulatorServer(users=60, orgs=3, seed=SEED, requests_per_10s=0, users_in_one_millisecond=30) as server:
        with http_client(server) as http:
            ordered = [u["id"] for u in http.get("/users", params={"order_by": "+created_at", "limit": 500}).json()]
            cursor = ordered[29]  # inside the crowd
            server.store.delete_user(cursor)
            after = http.get("/users", params={"order_by": "+created_at", "starting_after": cursor, "limit": 500})
            assert [u["id"] for u in after.json()] == ordered[30:]


# -- the rules of starting_after, from the spec text of GET /users (2025-11-10, 2026-05-12) --


@pytest.mark.parametrize("order_by", [None, "created_at", "+created_at", "-created_at"])
def test_the_cursor_takes_every_created_at_ordering(client: httpx.Client, order_by: str | None) -> None:
    first = client.get("/users", params={"limit": 1, **({"order_by": order_by} if order_by else {})}).json()[0]
    params = {"starting_after": first["id"], "limit": 500, "offset": 0}
    response = client.get("/users", params={**params, **({"order_by": order_by} if order_by else {})})
    assert response.status_code == 200 and len(response.json()) == USERS - 1


@pytest.mark.parametrize(
    "params",
    [
        {"order_by": "updated_at"},
        {"order_by": "+updated_at"},
        {"order_by": "-last_active_at"},
        {"order_by": "first_name"},
        {"order_by": "email_address"},
        {"offset": 1},
        {"offset": 500},
        {"starting_after": "user_2nQ7zXc3PqLm9RtY6uVb1WsKdHe"},  # a well-formed id of no user
        {"starting_after": "nonsense"},
    ],
)
def test_cursor_misuse_is_a_422_naming_starting_after(client: httpx.Client, params: dict[str, Any]) -> None:
    cursor = client.get("/users", params={"limit": 1}).json()[0]["id"]
    response = client.get("/users", params={"starting_after": cursor, **params})
    assert response.status_code == 422
    body = response.json()
    assert set(body) == {"errors", "clerk_trace_id"}
    assert body["errors"][0]["code"] == "form_param_value_invalid"
    assert body["errors"][0]["meta"] == {"param_name": "starting_after"}


def test_only_the_first_order_by_counts(client: httpx.Client) -> None:
    cursor = client.get("/users", params={"limit": 1}).json()[0]["id"]
    created_first = [("starting_after", cursor), ("order_by", "-created_at"), ("order_by", "username")]
    assert client.get("/users", params=created_first).status_code == 200
    username_first = [("starting_after", cursor), ("order_by", "username"), ("order_by", "-created_at")]
    assert client.get("/users", params=username_first).status_code == 422
