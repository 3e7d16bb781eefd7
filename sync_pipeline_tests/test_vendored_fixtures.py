"""The vendored copy of Clerk's example objects must equal ../shared/clerk/fixtures when that exists."""

import pytest

from sync_pipeline_tests.fixtures import SHARED_FIXTURES, VENDORED_FIXTURES


@pytest.mark.skipif(not SHARED_FIXTURES.is_dir(), reason="../shared is not beside this clone")
def test_the_vendored_fixtures_equal_the_shared_ones() -> None:
    shared = {p.name: p.read_bytes() for p in SHARED_FIXTURES.glob("*.json")}
    vendored = {p.name: p.read_bytes() for p in VENDORED_FIXTURES.glob("*.json")}
    assert vendored == shared, "copy ../shared/clerk/fixtures/*.json into sync_pipeline_tests/clerk_fixtures/"


def test_the_vendored_fixtures_are_present() -> None:
    assert len(list(VENDORED_FIXTURES.glob("*.json"))) >= 20
