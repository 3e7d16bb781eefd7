"""Validation rules: problems a sync reports about Clerk's data. The rows are still mirrored.

Each rule is one line of :data:`RULES`: the entity it looks at, the problem text, whether
it needs a full snapshot, and a vectorized test over the Clerk snapshot. A rule returns,
for each row of its entity's frame, either a problem text or null (no problem).

References to a parent (a membership's user and organization, read from the entity
descriptions) are only checked in a full sync: a scoped snapshot holds only part of the
instance, so a membership's user or organization may simply be out of scope.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sync_pipeline import model
from sync_pipeline.entities import catalog
from sync_pipeline.text_columns import is_in

VALIDATION_COLUMNS = ("entity", "id", "problem")

NO_EMAIL = "no e-mail"
NO_NAME = "no name"


def unknown_parent(parent_entity: str) -> str:
    """``unknown <parent's singular>``, followed in a report by the id no row of it has."""
    return f"unknown {catalog.describe(parent_entity).singular}"


UNKNOWN_USER = unknown_parent(model.USERS)  # followed by the user id
UNKNOWN_ORGANIZATION = unknown_parent(model.ORGANIZATIONS)  # followed by the organization id
NUL_REPLACED = "NUL replaced"  # U+0000 in a string, stored as U+FFFD (Postgres holds no NUL)


def blank(values: pd.Series) -> np.ndarray:
    """True where a text value is null or only whitespace."""
    return (values.str.strip().fillna("") == "").to_numpy(dtype=bool)


def _labelled(problem: str, mask: np.ndarray, detail: pd.Series | None = None) -> pd.Series:
    """A Series of problem texts where ``mask`` holds (with `` <detail>`` appended), else null."""
    out = pd.Series(pd.NA, index=range(len(mask)), dtype="string")
    if mask.any():
        if detail is None:
            out[mask] = problem
        else:
            out[mask] = problem + " " + detail[mask].fillna("(null)").to_numpy(dtype=object)
    return out


@dataclass(frozen=True)
class Rule:
    entity: str
    problem: str
    full_scope_only: bool
    check: Callable[[model.Snapshot], pd.Series]


def _no_email(clerk: model.Snapshot) -> pd.Series:
    return _labelled(NO_EMAIL, blank(clerk.users["primary_email"]))


def _no_name(clerk: model.Snapshot) -> pd.Series:
    users = clerk.users
    mask = blank(users["first_name"]) & blank(users["last_name"]) & blank(users["username"])
    return _labelled(NO_NAME, mask)


def _unknown_parent(entity: str, parent: catalog.Parent) -> Callable[[model.Snapshot], pd.Series]:
    def check(clerk: model.Snapshot) -> pd.Series:
        rows = clerk.frame(entity)
        mask = ~is_in(rows[parent.column], clerk.frame(parent.entity)["id"])
        return _labelled(unknown_parent(parent.entity), mask, rows[parent.column])

    return check


def _nul_replaced(entity: str) -> Callable[[model.Snapshot], pd.Series]:
    def check(clerk: model.Snapshot) -> pd.Series:
        frame = clerk.frame(entity)
        ids = clerk.nul_replaced.get(entity)
        if not ids:
            return _labelled(NUL_REPLACED, np.zeros(len(frame), dtype=bool))
        return _labelled(NUL_REPLACED, is_in(frame["id"], pd.Series(sorted(ids), dtype="string")))

    return check


RULES: tuple[Rule, ...] = (
    #    entity             problem                full only  check
    Rule(model.USERS,       NO_EMAIL,              False,     _no_email),
    Rule(model.USERS,       NO_NAME,               False,     _no_name),
    *(Rule(entity.name,     unknown_parent(parent.entity), True, _unknown_parent(entity.name, parent))
      for entity in catalog.ENTITIES for parent in entity.parents),
    *(Rule(entity,          NUL_REPLACED,          False,     _nul_replaced(entity)) for entity in model.ENTITIES),
)  # fmt: skip


def empty_problems() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype="string") for c in VALIDATION_COLUMNS})


def validate(clerk: model.Snapshot) -> pd.DataFrame:
    """Every rule over the (de-duplicated) Clerk snapshot: DataFrame(entity, id, problem)."""
    found = []
    for rule in RULES:
        if rule.full_scope_only and not clerk.scope.is_full:
            continue
        frame = clerk.frame(rule.entity)
        if frame.empty:
            continue
        problems = rule.check(clerk)
        hit = problems.notna().to_numpy(dtype=bool)
        if hit.any():
            found.append(
                pd.DataFrame(
                    {
                        "entity": pd.array([rule.entity] * int(hit.sum()), dtype="string"),
                        "id": frame["id"].array[hit],
                        "problem": problems.array[hit],
                    }
                )
            )
    if not found:
        return empty_problems()
    return pd.concat(found, ignore_index=True)
