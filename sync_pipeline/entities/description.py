"""What a mirrored Clerk entity is, said once: the shape every description in :mod:`.catalog` has.

A description is data, not behaviour: the normalizer builds rows from its column readers,
the client pages its endpoints, the mirror reads its table and scope filter, the diff
cascades along its parents, the apply orders deletes and upserts by them, the inbox
classifies its webhook events. None of those names an entity; they read these.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Column kinds: the frame dtype of each (JSON is canonical JSON text in frames, jsonb in Postgres).
TEXT = "string"
BOOL = "boolean"
MILLIS = "Int64"
INT = "Int32"  # distinct from MILLIS: kinds tell columns apart, not just dtypes
JSON = "json"

# Paging styles of an instance-wide list.
CURSOR_WINDOWS = "cursor windows"  # starting_after over disjoint created_at windows (GET /users)
OFFSET = "offset"  # limit/offset, the first page's total_count says how many pages to read at once

PRIVATE_METADATA = "private_metadata"

Reader = Callable[[Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Column:
    """One mirrored column: its name, its kind and where its value is in Clerk's object.

    ``path`` is the chain of keys to the value (``("organization", "id")``); a key that is
    missing, or a step that is not an object, reads as null. ``read`` replaces the path
    where a value takes a rule to find (a user's primary e-mail): it is handed the whole
    object and returns the raw value, which the kind then converts like any other.
    ``raw`` and ``raw_digest`` have neither: the normalizer computes them.
    """

    name: str
    kind: str
    path: tuple[str, ...] = ()
    read: Reader | None = None

    @property
    def computed(self) -> bool:
        return not self.path and self.read is None


def value_at(obj: Any, path: tuple[str, ...]) -> Any:
    """The value at ``path`` in a Clerk object: null where a key is missing or a step is not an object."""
    value = obj
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def col(name: str, kind: str, path: str | None = None, *, read: Reader | None = None) -> Column:
    """A column read from ``path`` (dotted, default: the column's own name) or by ``read``."""
    if read is not None:
        return Column(name, kind, read=read)
    return Column(name, kind, tuple((path or name).split(".")))


@dataclass(frozen=True)
class Parent:
    """A column naming a row of another entity. Deleting that row deletes this one
    (``cascade:<singular>``), a sync scoped to it covers this one, and the parent is
    written before and deleted after its children."""

    column: str
    entity: str  # the parent's table name
    # The parent row holds a count of these children (an organization's members_count):
    # a child created or deleted changes the parent, an update does not.
    counts_children: bool = False


@dataclass(frozen=True)
class ByParent:
    """A list of this entity under one parent row, and the parent's own by-id path, which
    tells a gone parent (404) from a list that merely refused."""

    parent_column: str
    path: str  # with "{id}" for the parent's id
    parent_path: str
    params: Mapping[str, str] = field(default_factory=dict)
    # False where Clerk documents that the list leaves some children out: it then cannot
    # stand for "every child of this parent", so a scoped sync does not reach the entity
    # through this parent (the full sync follows it).
    complete: bool = True


@dataclass(frozen=True)
class Endpoints:
    """Where Clerk lists the entity: instance-wide, by id, and under each parent."""

    list_path: str
    paging: str = OFFSET
    list_params: Mapping[str, str] = field(default_factory=lambda: {"order_by": "+created_at"})
    by_id_path: str | None = None  # with "{id}"
    by_id_params: Mapping[str, str] = field(default_factory=dict)
    # A repeated filter of the list taking up to 100 ids (``user_id=``): reads by id go
    # through it, 100 a request, rather than one request per id.
    ids_filter: str | None = None
    by_parent: tuple[ByParent, ...] = ()

    @property
    def list_label(self) -> str:
        """The list's name in fetch stats: ``GET /users``."""
        return f"GET {self.list_path}"

    @property
    def by_id_label(self) -> str | None:
        return f"GET {self.by_id_path}" if self.by_id_path else None


@dataclass(frozen=True)
class Entity:
    """One mirrored Clerk list, described once. See the module docstring of :mod:`.catalog`."""

    name: str  # the mirror table, and the key of frames, plans and stats
    singular: str  # the inbox's ``entity`` column and cascade reasons: "user"
    id_prefix: str  # "user_": every Clerk id of this entity starts so
    columns: tuple[Column, ...]
    endpoints: Endpoints
    event_prefix: str  # webhook types "<event_prefix>.<action>"
    parents: tuple[Parent, ...] = ()
    # The SyncScope field whose ids name rows of this entity itself; None: a scoped sync
    # reaches it only through its parents (or not at all, without parents).
    scope_ids: str | None = None
    # Keys of objects embedded in Clerk's object that carry their own private metadata.
    embedded_private: tuple[str, ...] = ()
    # Columns that no two live rows share (a membership's organization and user).
    unique_together: tuple[str, ...] = ()
    # Keys of Clerk's object left out of ``raw``: some of its lists carry them and others
    # not, so ``raw`` (and its digest) would change with the list that read the row.
    raw_leaves_out: tuple[str, ...] = ()
    event_actions: tuple[str, ...] = ("created", "updated", "deleted")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def kinds(self) -> dict[str, str]:
        return {c.name: c.kind for c in self.columns}

    @property
    def has_private_metadata(self) -> bool:
        return PRIVATE_METADATA in self.column_names

    @property
    def event_types(self) -> tuple[str, ...]:
        return tuple(f"{self.event_prefix}.{action}" for action in self.event_actions)

    def parent_column(self, parent_entity: str) -> str | None:
        return next((p.column for p in self.parents if p.entity == parent_entity), None)


def clerk_object(
    name: str,
    *,
    columns: tuple[Column, ...],
    **facts: Any,
) -> Entity:
    """An entity whose columns are ``id``, ``columns``, then what every Clerk object has:
    ``created_at``, ``updated_at`` (epoch ms), ``raw`` and ``raw_digest``."""
    every = (
        col("id", TEXT),
        *columns,
        col("created_at", MILLIS),
        col("updated_at", MILLIS),
        Column("raw", JSON),
        Column("raw_digest", TEXT),
    )
    return Entity(name=name, columns=every, **facts)
