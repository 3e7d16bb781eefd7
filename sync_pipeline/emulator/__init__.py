"""A Clerk Backend API emulator: real HTTP, Clerk's shapes, deterministic generated data.

Serves the subset of Clerk's Backend API the pipeline reads (users, organizations,
memberships, organization roles and permissions, invitations and domains; see
/work/shared/clerk/README.md) over data generated from a seed, with
Clerk's auth, rate limits and error bodies, configurable latency and injectable faults.
Scales to a million users. See :class:`EmulatorServer` (tests), :func:`run_emulator`
(the CLI) and :class:`ClerkStore` (the data and its mutation API).

Changes to the data (through the store, or the admin API under ``/_emulator/``) can be
delivered as Svix-signed Clerk webhooks, with duplicates, reordering and drops on demand:
see :class:`WebhookDispatcher` and :meth:`EmulatorServer.deliver_webhooks_to`.
"""

from sync_pipeline.emulator.app import (
    DEFAULT_SECRET_KEY,
    ClerkEmulatorApp,
    EmulatorSettings,
    EmulatorStats,
)
from sync_pipeline.emulator.faults import Fault, FaultInjector, FaultKind
from sync_pipeline.emulator.server import EmulatorServer, run_emulator
from sync_pipeline.emulator.store import (
    ChangeRefused,
    ClerkStore,
    InvalidParameter,
    ObjectNotFound,
    OrganizationQuery,
    UserQuery,
)
from sync_pipeline.emulator.webhooks import (
    SVIX_RETRY_SCHEDULE_S,
    WebhookDispatcher,
    WebhookMessage,
    WebhookStats,
)

__all__ = [
    "ChangeRefused",
    "DEFAULT_SECRET_KEY",
    "SVIX_RETRY_SCHEDULE_S",
    "ClerkEmulatorApp",
    "ClerkStore",
    "EmulatorServer",
    "EmulatorSettings",
    "EmulatorStats",
    "Fault",
    "FaultInjector",
    "FaultKind",
    "InvalidParameter",
    "ObjectNotFound",
    "OrganizationQuery",
    "UserQuery",
    "WebhookDispatcher",
    "WebhookMessage",
    "WebhookStats",
    "run_emulator",
]
