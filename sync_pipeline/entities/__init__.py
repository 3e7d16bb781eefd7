"""Each mirrored Clerk entity, described once (:mod:`.description`, :mod:`.catalog`)."""

from sync_pipeline.entities.catalog import BY_EVENT_PREFIX, BY_NAME, BY_SINGULAR, ENTITIES, children_of, describe
from sync_pipeline.entities.description import ByParent, Column, Endpoints, Entity, Parent

__all__ = [
    "BY_EVENT_PREFIX",
    "BY_NAME",
    "BY_SINGULAR",
    "ENTITIES",
    "ByParent",
    "Column",
    "Endpoints",
    "Entity",
    "Parent",
    "children_of",
    "describe",
]
