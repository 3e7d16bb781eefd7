"""Clerk webhooks: a receiver that stores verified deliveries in an inbox table, and the inbox's API.

The receiver (:mod:`sync_pipeline.webhooks.receiver`) only verifies and stores; syncs
read the inbox (:mod:`sync_pipeline.webhooks.inbox`) and mark what they processed.
"""

from sync_pipeline.webhooks.inbox import (
    RELEVANT_EVENT_TYPES,
    EventFacts,
    InboxEvent,
    InboxHealth,
    StoredDelivery,
    affected_ids,
    affected_scope,
    classify,
    events_by_ids,
    events_received_between,
    inbox_health,
    mark_processed,
    pending_events,
    store_delivery,
)

__all__ = [
    "RELEVANT_EVENT_TYPES",
    "EventFacts",
    "InboxEvent",
    "InboxHealth",
    "StoredDelivery",
    "affected_ids",
    "affected_scope",
    "classify",
    "events_by_ids",
    "events_received_between",
    "inbox_health",
    "mark_processed",
    "pending_events",
    "store_delivery",
]
