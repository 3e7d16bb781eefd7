"""A Clerk Backend API emulator: real HTTP, Clerk's shapes, deterministic generated data.

Serves the subset of Clerk's Backend API the pipeline reads (users, organizations,
memberships; see /work/shared/clerk/README.md) over data generated from a seed, with
Clerk's auth, rate limits and error bodies, configurable latency and injectable faults.
Scales to a million users. See :class:`EmulatorServer` (tests), :func:`run_emulator`
(the CLI) and :class:`ClerkStore` (the data and its mutation API).
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
    ClerkStore,
    InvalidParameter,
    ObjectNotFound,
    OrganizationQuery,
    UserQuery,
)

__all__ = [
    "DEFAULT_SECRET_KEY",
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
    "run_emulator",
]
