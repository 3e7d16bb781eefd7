"""Reading Clerk: the Backend API client (and, alongside it, the normalizer module)."""

from sync_pipeline.clerk.client import (
    ClerkClient,
    EndpointStats,
    FetchResult,
    FetchStats,
    OnPage,
    parse_retry_after,
)
from sync_pipeline.clerk.errors import (
    ClerkAuthError,
    ClerkConfigError,
    ClerkError,
    ClerkIncompleteListError,
    ClerkRequestError,
    ClerkUnavailableError,
)

__all__ = [
    "ClerkAuthError",
    "ClerkClient",
    "ClerkConfigError",
    "ClerkError",
    "ClerkIncompleteListError",
    "ClerkRequestError",
    "ClerkUnavailableError",
    "EndpointStats",
    "FetchResult",
    "FetchStats",
    "OnPage",
    "parse_retry_after",
]
