"""The four readings of a gone parent's memberships; the parent itself is always a 404."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sync_pipeline.emulator import EmulatorServer
from sync_pipeline.emulator.app import GONE_PARENT_ANSWERS, EmulatorSettings

NEVER_USER, NEVER_ORGANIZATION = "user_2nQ7zXc3PqLm9RtY6uVb1WsKdHe", "org_2nQ8bKfV1xYtR4mJ0aLcE7sDwZp"


def error_body(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"errors", "clerk_trace_id"}
    (error,) = body["errors"]
    assert set(error) == {"message", "long_message", "code", "meta"}
    return error


@pytest.mark.parametrize("answer", GONE_PARENT_ANSWERS)
def test_a_gone_parents_memberships_answer_as_configured(
    private_emulator: EmulatorServer, private_client: httpx.Client, answer: str
) -> None:
    store = private_emulator.store
    membership = private_client.get("/organization_memberships", params={"limit": 1}).json()["data"][0]
    deleted_user = membership["public_user_data"]["user_id"]
    deleted_organization = next(
        m["organization"]["id"] for m in store.iter_memberships() if m["public_user_data"]["user_id"] != deleted_user
    )
    store.delete_user(deleted_user)
    store.delete_organization(deleted_organization)
    private_emulator.settings.gone_parent_answer = answer
    lists = {
        f"/users/{deleted_user}/organization_memberships": "user_id",
        f"/users/{NEVER_USER}/organization_memberships": "user_id",
        f"/organizations/{deleted_organization}/memberships": "organization_id",
        f"/organizations/{NEVER_ORGANIZATION}/memberships": "organization_id",
    }
    for path, param_name in lists.items():
        response = private_client.get(path)
        if answer == "empty":
            assert response.status_code == 200 and response.json() == {"data": [], "total_count": 0}
            continue
        assert response.status_code == int(answer)
        error = error_body(response)
        assert error["code"] == {"404": "resource_not_found", "403": "authorization_invalid",
                                 "422": "form_param_value_invalid"}[answer]
        if answer == "422":
            assert error["meta"] == {"param_name": param_name}
    for parent in (f"/users/{deleted_user}", f"/users/{NEVER_USER}", f"/organizations/{deleted_organization}",
                   f"/organizations/{NEVER_ORGANIZATION}"):
        response = private_client.get(parent)
        assert response.status_code == 404 and error_body(response)["code"] == "resource_not_found"
    living = store.get_membership(next(m["id"] for m in store.iter_memberships()))
    assert living is not None  # a parent that exists still lists its memberships
    listed = private_client.get(f"/organizations/{living['organization']['id']}/memberships")
    assert listed.status_code == 200 and listed.json()["total_count"] >= 1


def test_the_default_is_404_and_nonsense_is_refused() -> None:
    settings = EmulatorSettings()
    assert settings.gone_parent_answer == "404"
    with pytest.raises(ValueError, match="gone_parent_answer"):
        settings.gone_parent_answer = "410"
    with pytest.raises(ValueError, match="gone_parent_answer"):
        EmulatorSettings(gone_parent_answer="")
