"""Hostile data from Clerk: planted in the emulator's store, then synced for real.

Everything is stored intact (``raw`` equal to what Clerk served, typed columns as
documented), reported (validation problems, e-mail conflicts), never a crash, never a
partial write, and a second sync of the same data writes nothing.
"""

from __future__ import annotations

from sync_pipeline.clerk.ids import is_clerk_id
from sync_pipeline.model import MEMBERSHIPS, ORGANIZATIONS, USERS
from sync_pipeline_tests.faults.report import FaultReport
from sync_pipeline_tests.faults.support import (
    assert_mirror_equals_clerk,
    assert_nothing_written,
    failure,
    raw_of,
    run,
)
from sync_pipeline_tests.harness import SyncHarness, as_json, check_result, written_rows

UNICODE = {
    "rtl": "مرحبا بالعالم",
    "combining": "Zoe\u0308 n\u0303",  # decomposed: must not be normalised to NFC
    "zwj emoji": "👩‍👩‍👧‍👦🏳️‍🌈",
    "astral cjk": "𠜎𠜱𠝹𠱓",
    "bidi override": "\u202egnp.exe",
    "zero width": "a\u200bb\ufeffc",
    "quotes and backslashes": "O'Brien \"\\N\" \\x00 %s {}",
    "newlines": "line one\nline two\r\n\ttab",
}
ODD_IDS = [
    "user_" + "x" * 200,
    "USER-odd id with spaces",
    "user_ünïçødé",
    "12345",
    "user_'; DROP TABLE users; --",
    "user_with/slash",
]


def plant_hostile_data(harness: SyncHarness) -> dict:
    """Every kind of hostile data at once, through the emulator's store mutation API."""
    store = harness.emulator.store
    users = [u["id"] for u in store.iter_users()]
    organizations = [o["id"] for o in store.iter_organizations()]
    planted: dict = {}

    # Unicode in every text field of a user, an organization and a membership.
    text = " ".join(UNICODE.values())
    unicode_user = store.create_user(
        email_addresses=["zoë.łukasz+тест@例え.テスト", "ユーザー@münchen.de"],
        first_name=UNICODE["combining"] + " " + UNICODE["astral cjk"],
        last_name=UNICODE["rtl"] + UNICODE["zwj emoji"],
        username="ünï_çødé_" + UNICODE["zero width"],
        external_id=UNICODE["quotes and backslashes"],
        phone_numbers=["+81 ３０-１２３４-５６７８"],
        public_metadata={key: value for key, value in UNICODE.items()} | {"键🔑": ["ü", {"ß": "ẞ"}]},
        private_metadata={"notes": UNICODE["newlines"], UNICODE["bidi override"]: True},
        unsafe_metadata={"free text": text},
    )
    planted["unicode user"] = unicode_user["id"]
    unicode_org = store.create_organization(
        UNICODE["rtl"] + " " + UNICODE["zwj emoji"], slug="ünï-çødé-org", public_metadata={"名前": text}
    )
    planted["unicode organization"] = unicode_org["id"]
    planted["unicode membership"] = store.create_membership(
        unicode_org["id"], unicode_user["id"], role="org:ロール_" + UNICODE["zwj emoji"], public_metadata={"ß": text}
    )["id"]

    # 1 MB of metadata (and a private half-megabyte).
    big = {f"key_{i:05d}": "v" * 90 + f"{i:05d}" for i in range(10_000)}  # ~1 MB of JSON
    planted["1 MB metadata"] = store.update_user(users[0], public_metadata=big, private_metadata={"blob": "p" * 500_000})["id"]

    # Null where Clerk documents a value.
    store.set_user_fields(
        users[1],
        {
            "first_name": None, "last_name": None, "username": None, "email_addresses": None,
            "primary_email_address_id": None, "image_url": None, "banned": None, "public_metadata": None,
            "private_metadata": None, "created_at": None, "external_id": None, "object": None,
        },
    )
    planted["nulls user"] = users[1]
    store.set_organization_fields(
        organizations[1], {"name": None, "image_url": None, "public_metadata": None, "created_by": None, "created_at": None}
    )
    planted["nulls organization"] = organizations[1]

    # Unknown fields, unknown enum values, values of the wrong type.
    store.set_user_fields(
        users[2],
        {
            "brand_new_field": {"nested": [1, 2, {"deeper": None}]},
            "object": "user_v2",
            "banned": "maybe",
            "locked": "sometimes",
            "verification_attempts_remaining": "many",
            "updated_at": "1900000000000",  # a number as text
            "created_at": 1.5,  # a fraction of a millisecond
        },
        touch=False,
    )
    planted["unknown fields user"] = users[2]
    store.set_organization_fields(organizations[2], {"plan": "enterprise_plus", "object": "organization_v9", "members_count": "lots"})
    planted["unknown fields organization"] = organizations[2]
    planted["unknown role membership"] = store.create_membership(organizations[3], users[3], role="org:brand_new_role")["id"]

    # Ids of unexpected shapes.
    template = store.get_user(users[4])
    for odd in ODD_IDS:
        store.plant_user({**template, "id": odd, "email_addresses": [], "primary_email_address_id": None, "first_name": odd[:20]})
    planted["odd ids"] = list(ODD_IDS)

    # One e-mail address on two users.
    planted["shared e-mail"] = [
        store.create_user(email_addresses=["shared@example.com"], first_name=name)["id"] for name in ("First", "Second")
    ]
    return planted


def test_hostile_data_is_stored_intact_reported_and_never_rewritten(harness: SyncHarness, fault_report: FaultReport) -> None:
    assert run(harness, fault_report).success
    planted = plant_hostile_data(harness)
    fault_report.tried("hostile Clerk objects", 12 + len(ODD_IDS))
    fault_report.tried("Unicode strings", len(UNICODE))

    result = run(harness, fault_report)

    assert result.success, failure(result)
    assert_mirror_equals_clerk(harness, fault_report)  # every raw object exactly as Clerk serves it
    store = harness.emulator.store

    user = harness.row(USERS, planted["unicode user"])
    clerk_user = store.get_user(planted["unicode user"])
    for column in ("first_name", "last_name", "username", "external_id"):
        assert user[column] == clerk_user[column], column
    assert user["first_name"].startswith("Zoe\u0308")  # not NFC-normalised
    assert user["primary_email"] == "zoë.łukasz+тест@例え.テスト"
    assert as_json(user["public_metadata"]) == clerk_user["public_metadata"]
    assert as_json(user["private_metadata"]) == clerk_user["private_metadata"]
    assert harness.row(ORGANIZATIONS, planted["unicode organization"])["slug"] == "ünï-çødé-org"
    assert harness.row(MEMBERSHIPS, planted["unicode membership"])["role"].startswith("org:ロール_")

    big = harness.row(USERS, planted["1 MB metadata"])
    assert len(as_json(big["public_metadata"])) == 10_000 and as_json(big["private_metadata"])["blob"] == "p" * 500_000

    nulls = harness.row(USERS, planted["nulls user"])
    for column in ("first_name", "primary_email", "banned", "public_metadata", "created_at", "image_url"):
        assert nulls[column] is None or nulls[column] != nulls[column], column  # None or NaT
    assert harness.row(ORGANIZATIONS, planted["nulls organization"])["name"] is None

    odd = harness.row(USERS, planted["unknown fields user"])
    assert odd["banned"] is None  # "maybe" is no boolean: null in the column, kept in raw
    assert raw_of(harness, USERS, planted["unknown fields user"])["brand_new_field"] == {"nested": [1, 2, {"deeper": None}]}
    assert harness.row(ORGANIZATIONS, planted["unknown fields organization"])["members_count"] is None
    assert harness.row(MEMBERSHIPS, planted["unknown role membership"])["role"] == "org:brand_new_role"
    for odd_id in ODD_IDS:
        assert harness.row(USERS, odd_id)["deleted_at"] is None

    # Reported: the problems and the shared address, in the plan and in the checks.
    plan = result.output_for_node("sync_plan")
    problems = plan.validation_problems
    assert {"no e-mail", "no name"} <= set(problems.loc[problems["id"] == planted["nulls user"], "problem"])
    assert "shared@example.com" in set(plan.email_conflicts["email"])
    assert result.asset_materializations_for_node("sync_plan")[0].metadata["email_conflicts"].value >= 1
    assert not check_result(result, "live_primary_emails_distinct")  # a warning, not a refusal

    # Nothing about the data makes the next sync see a change that is not there.
    versions = harness.row_versions()
    again = run(harness, fault_report)
    assert again.success and written_rows(again) == 0
    assert harness.row_versions() == versions

    # A partial sync of the odd ids that could be Clerk's (as webhooks would ask for) finds them
    # in step too; one that could never be (a path segment, a space, 205 characters) is refused
    # before any request, naming the id, and writes nothing (the full scan keeps them mirrored).
    askable = [odd for odd in ODD_IDS if is_clerk_id(odd)]
    assert askable and len(askable) < len(ODD_IDS)
    scoped = run(harness, fault_report, user_ids=askable + [planted["unicode user"], planted["nulls user"]])
    assert scoped.success, failure(scoped)
    assert written_rows(scoped) == 0 and harness.row_versions() == versions
    for odd in (odd for odd in ODD_IDS if not is_clerk_id(odd)):
        refused = run(harness, fault_report, user_ids=[odd, planted["unicode user"]])
        assert not refused.success and "is not a Clerk id" in failure(refused), odd
        assert harness.row_versions() == versions


# Found here: Postgres text and jsonb refuse U+0000, which JSON (and so Clerk) allows, so one NUL
# in any field failed every apply from then on. The mirror stores U+FFFD in its place, in text
# columns and in raw (as the webhook inbox does), and the plan reports it.


def test_a_nul_in_a_string_is_stored_as_documented(harness: SyncHarness, fault_report: FaultReport) -> None:
    assert run(harness, fault_report).success
    user_id = next(iter(harness.emulator.store.iter_users()))["id"]
    harness.emulator.store.set_user_fields(user_id, {"first_name": "nul\x00here", "public_metadata": {"k\x00": "v\x00w"}})
    fault_report.tried("NUL strings")

    result = run(harness, fault_report)

    assert result.success, failure(result)
    row = harness.row(USERS, user_id)
    assert row["first_name"] == "nul\ufffdhere"
    assert as_json(row["public_metadata"]) == {"k\ufffd": "v\ufffdw"}
    assert raw_of(harness, USERS, user_id)["first_name"] == "nul\ufffdhere"
    problems = result.output_for_node("sync_plan").validation_problems
    assert "NUL replaced" in set(problems.loc[problems["id"] == user_id, "problem"])
    again = run(harness, fault_report)
    assert again.success and written_rows(again) == 0


def test_a_nul_in_a_string_never_causes_a_partial_write(harness: SyncHarness, fault_report: FaultReport) -> None:
    """Whatever the mirror does with a NUL, it does it to the whole sync or not at all."""
    assert run(harness, fault_report).success
    users = [u["id"] for u in harness.emulator.store.iter_users()]
    harness.emulator.store.update_user(users[1], first_name="An ordinary change")
    harness.emulator.store.delete_user(users[2])
    harness.emulator.store.set_user_fields(users[0], {"last_name": "a\x00b"})
    before = harness.row_versions()

    result = run(harness, fault_report)

    if result.success:
        assert harness.row(USERS, users[1])["first_name"] == "An ordinary change"
        assert harness.row(USERS, users[2])["deleted_at"] is not None
    else:
        assert_nothing_written(harness, fault_report, before)
        assert harness.sync_runs()["outcome"].iloc[-1] == "failed"
