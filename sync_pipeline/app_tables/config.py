"""The application's tables, as a team declares them in YAML, checked before anything runs.

One file lists every table that holds rows keyed by a Clerk user or organization id, and
what the sync must keep true of it::

    tables:
      - table: app.user_settings            # schema-qualified; "public" when unqualified
        user_id_column: clerk_user_id       # holds the Clerk user id (user_…)
        orphans: delete                     # delete | anonymize | keep
        provision:
          per: user                         # user | membership
          defaults: {theme: system}         # column values for a created row
        unique_per: [clerk_user_id]         # one row per user, the oldest kept (by created_at)

This module only checks the file's own shape: every error is one line naming the file and
the bad key (``tables[2].orphans``). Whether the tables and columns exist, and whether the
values fit their types, is checked against the database by :mod:`.catalog`.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sync_pipeline.errors import ConfigurationError

# Orphan policies: what happens to a row whose user, organization or membership Clerk no longer has.
DELETE = "delete"
ANONYMIZE = "anonymize"
KEEP = "keep"
ORPHAN_POLICIES = (DELETE, ANONYMIZE, KEEP)

# What a row belongs to. A row is orphaned when its owner is gone.
USER = "user"
ORGANIZATION = "organization"
MEMBERSHIP = "membership"
OWNERS = (USER, ORGANIZATION, MEMBERSHIP)
PROVISION_PER = (USER, MEMBERSHIP)

OLDEST = "oldest"
NEWEST = "newest"
KEEP_CHOICES = (OLDEST, NEWEST)
DEFAULT_AGE_COLUMN = "created_at"

DEFAULT_SCHEMA = "public"

# Identifiers end up in SQL. They are checked against the catalog and always quoted; on top
# of that only the characters real schemas use are accepted, so no name can carry a quote,
# a driver placeholder (% or :) or anything else that would need escaping.
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")

_TABLE_KEYS = (
    "table",
    "user_id_column",
    "organization_id_column",
    "owner",
    "orphans",
    "anonymize",
    "provision",
    "unique_per",
    "max_cleanup_share",
)
_PROVISION_KEYS = ("per", "defaults")
_UNIQUE_KEYS = ("columns", "keep", "by")


@dataclass(frozen=True)
class Provision:
    """A row must exist for every live user (``per: user``) or membership (``per: membership``)."""

    per: str
    defaults: dict[str, Any] = field(default_factory=dict)  # column -> JSON value, cast by Postgres


@dataclass(frozen=True)
class UniqueRule:
    """``columns`` must be unique; of the rows sharing them, the one ``keep`` says by ``age_column`` stays."""

    columns: tuple[str, ...]
    keep: str = OLDEST
    age_column: str = DEFAULT_AGE_COLUMN
    age_column_given: bool = False  # the default column may be absent; a named one must exist


@dataclass(frozen=True)
class AppTableSpec:
    """One table of the file, its shape checked (not yet against the database)."""

    position: int  # index in ``tables``, for error messages
    schema: str
    name: str
    user_id_column: str | None
    organization_id_column: str | None
    owner: str
    orphans: str
    anonymize: dict[str, Any]  # column -> value (None: null); only with orphans: anonymize
    provision: Provision | None
    unique: UniqueRule | None
    max_cleanup_share: float | None  # overrides the run's max_delete_share for this table

    @property
    def label(self) -> str:
        """``schema.table``: how the plan, the audit trail and the messages name the table."""
        return f"{self.schema}.{self.name}"

    @property
    def where(self) -> str:
        return f"tables[{self.position}] ({self.label})"

    @property
    def id_columns(self) -> tuple[str, ...]:
        return tuple(c for c in (self.user_id_column, self.organization_id_column) if c)


@dataclass(frozen=True)
class AppTablesConfig:
    source: str  # the file, as named in messages
    tables: tuple[AppTableSpec, ...]

    def error(self, message: str) -> ConfigurationError:
        return ConfigurationError(f"app tables {self.source}: {message}")


class _Problems:
    """Raises the one-line error for a key of the file."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __call__(self, key: str, problem: str) -> ConfigurationError:
        return ConfigurationError(f"app tables {self.source}: {key}: {problem}")


def _suggest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_keys(mapping: dict, allowed: tuple[str, ...], where: str, problem: _Problems) -> None:
    for key in mapping:
        if key not in allowed:
            raise problem(
                f"{where}.{key}" if where else str(key),
                f"unknown key{_suggest(str(key), allowed)}; allowed: {', '.join(allowed)}",
            )


def check_identifier(value: Any, key: str, problem: _Problems) -> str:
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise problem(
            key,
            f"{value!r} is not a supported name: letters, digits, _ and $, starting with a letter or _, "
            "at most 63 characters",
        )
    return value


def _choice(value: Any, choices: tuple[str, ...], key: str, problem: _Problems) -> str:
    if value not in choices:
        raise problem(key, f"{value!r} is not one of {', '.join(choices)}{_suggest(str(value), choices)}")
    return value


def _column_values(value: Any, key: str, problem: _Problems) -> dict[str, Any]:
    """A mapping column -> JSON value (defaults, anonymized values)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise problem(key, "must be a mapping of column: value")
    for column in value:
        check_identifier(column, f"{key}.{column}", problem)
    return dict(value)


def _table_name(value: Any, key: str, problem: _Problems) -> tuple[str, str]:
    if not isinstance(value, str) or not value:
        raise problem(key, "must name the table, e.g. app.user_settings")
    parts = value.split(".")
    if len(parts) > 2:
        raise problem(key, f"{value!r}: give schema.table at most")
    schema, name = parts if len(parts) == 2 else (DEFAULT_SCHEMA, parts[0])
    return check_identifier(schema, key, problem), check_identifier(name, key, problem)


def _provision(value: Any, key: str, spec_columns: dict, problem: _Problems) -> Provision | None:
    if value is None:
        return None
    if isinstance(value, str):  # shorthand: `provision: user`
        value = {"per": value}
    if not isinstance(value, dict):
        raise problem(key, "must be a mapping with per (user | membership) and optional defaults")
    _check_keys(value, _PROVISION_KEYS, key, problem)
    if "per" not in value:
        raise problem(f"{key}.per", "is required: user (a row per live user) or membership (a row per membership)")
    per = _choice(value["per"], PROVISION_PER, f"{key}.per", problem)
    needed = {USER: ("user_id_column",), MEMBERSHIP: ("user_id_column", "organization_id_column")}[per]
    for column_key in needed:
        if not spec_columns.get(column_key):
            raise problem(f"{key}.per", f"a row per {per} needs {column_key}")
    defaults = _column_values(value.get("defaults"), f"{key}.defaults", problem)
    for column in defaults:
        if column in spec_columns.values():
            raise problem(f"{key}.defaults.{column}", "is an id column: the sync fills it from Clerk")
    return Provision(per=per, defaults=defaults)


def _unique(value: Any, key: str, id_columns: tuple[str, ...], problem: _Problems) -> UniqueRule | None:
    if value is None:
        return None
    if isinstance(value, (str, list)):  # shorthand: `unique_per: [user_id]`, oldest by created_at
        value = {"columns": value}
    if not isinstance(value, dict):
        raise problem(key, "must list the key's columns, or be a mapping with columns, keep and by")
    _check_keys(value, _UNIQUE_KEYS, key, problem)
    columns = value.get("columns")
    if isinstance(columns, str):
        columns = [columns]
    if not isinstance(columns, list) or not columns:
        raise problem(f"{key}.columns", "must list at least one column")
    for i, column in enumerate(columns):
        check_identifier(column, f"{key}.columns[{i}]", problem)
    if len(set(columns)) != len(columns):
        raise problem(f"{key}.columns", "names a column twice")
    if not set(columns) & set(id_columns):
        # Duplicates are resolved per Clerk user or organization: that is what scopes them.
        raise problem(f"{key}.columns", f"must include the user or organization id column ({', '.join(id_columns)})")
    keep = _choice(value.get("keep", OLDEST), KEEP_CHOICES, f"{key}.keep", problem)
    given = "by" in value
    age_column = check_identifier(value["by"], f"{key}.by", problem) if given else DEFAULT_AGE_COLUMN
    return UniqueRule(columns=tuple(columns), keep=keep, age_column=age_column, age_column_given=given)


def _table(entry: Any, position: int, problem: _Problems) -> AppTableSpec:
    where = f"tables[{position}]"
    if not isinstance(entry, dict):
        raise problem(where, "must be a mapping with at least table and user_id_column or organization_id_column")
    if "table" not in entry:
        _check_keys(entry, _TABLE_KEYS, where, problem)
        raise problem(f"{where}.table", "is required")
    schema, name = _table_name(entry["table"], f"{where}.table", problem)
    where = f"{where} ({schema}.{name})"
    _check_keys(entry, _TABLE_KEYS, where, problem)
    columns = {}
    for key in ("user_id_column", "organization_id_column"):
        if entry.get(key) is not None:
            columns[key] = check_identifier(entry[key], f"{where}.{key}", problem)
    if not columns:
        raise problem(where, "needs user_id_column, organization_id_column or both: which column holds the Clerk id?")
    if len(set(columns.values())) != len(columns):
        raise problem(f"{where}.organization_id_column", "is the same column as user_id_column")
    user_column, org_column = columns.get("user_id_column"), columns.get("organization_id_column")

    default_owner = MEMBERSHIP if user_column and org_column else USER if user_column else ORGANIZATION
    owner = _choice(entry.get("owner", default_owner), OWNERS, f"{where}.owner", problem)
    if owner in (USER, MEMBERSHIP) and not user_column:
        raise problem(f"{where}.owner", f"a row owned by a {owner} needs user_id_column")
    if owner in (ORGANIZATION, MEMBERSHIP) and not org_column:
        article = "an" if owner == ORGANIZATION else "a"
        raise problem(f"{where}.owner", f"a row owned by {article} {owner} needs organization_id_column")

    if "orphans" not in entry:
        policies = ", ".join(ORPHAN_POLICIES)
        raise problem(f"{where}.orphans", f"is required: what happens to a row whose {owner} Clerk no longer has ({policies})")
    orphans = _choice(entry["orphans"], ORPHAN_POLICIES, f"{where}.orphans", problem)
    anonymize = _column_values(entry.get("anonymize"), f"{where}.anonymize", problem)
    if orphans == ANONYMIZE and not anonymize:
        raise problem(
            f"{where}.anonymize", "is required with orphans: anonymize: list the columns and their values (null to clear)"
        )
    if orphans != ANONYMIZE and "anonymize" in entry:
        raise problem(f"{where}.anonymize", f"only applies with orphans: anonymize (this table's orphans: {orphans})")

    share = entry.get("max_cleanup_share")
    if share is not None and (isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1):
        raise problem(f"{where}.max_cleanup_share", f"{share!r} must be a number between 0 and 1")

    return AppTableSpec(
        position=position,
        schema=schema,
        name=name,
        user_id_column=user_column,
        organization_id_column=org_column,
        owner=owner,
        orphans=orphans,
        anonymize=anonymize,
        provision=_provision(entry.get("provision"), f"{where}.provision", columns, problem),
        unique=_unique(entry.get("unique_per"), f"{where}.unique_per", tuple(columns.values()), problem),
        max_cleanup_share=float(share) if share is not None else None,
    )


def parse_config(text: str, source: str) -> AppTablesConfig:
    """The file's text, checked; ``source`` names the file in messages."""
    problem = _Problems(source)
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f"line {mark.line + 1}" if mark else "?"
        raise problem(at, f"not valid YAML ({getattr(error, 'problem', None) or error})") from None
    if not isinstance(document, dict):
        raise problem("(top)", "must be a mapping with a tables list")
    _check_keys(document, ("tables",), "", problem)
    entries = document.get("tables")
    if not isinstance(entries, list) or not entries:
        raise problem("tables", "must list at least one table")
    tables = tuple(_table(entry, i, problem) for i, entry in enumerate(entries))
    seen: dict[str, int] = {}
    for table in tables:
        if table.label in seen:
            raise problem(f"tables[{table.position}].table", f"{table.label} is already listed at tables[{seen[table.label]}]")
        seen[table.label] = table.position
    return AppTablesConfig(source=source, tables=tables)


def load_config(path: str | Path) -> AppTablesConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"SYNC_APP_TABLES={str(path)!r}: no such file") from None
    except OSError as error:
        raise ConfigurationError(f"SYNC_APP_TABLES={str(path)!r}: cannot be read ({error.strerror})") from None
    return parse_config(text, str(path))
