"""Reading Clerk: the Backend API client (and, alongside it, the normalizer module)."""

from sync_pipeline.clerk.call import OnPage
from sync_pipeline.clerk.client import ClerkClient, FetchResult
from sync_pipeline.clerk.errors import (
    ClerkAuthError,
    ClerkBadIdError,
    ClerkConfigError,
    ClerkError,
    ClerkIncompleteListError,
    ClerkRequestError,
    ClerkUnavailableError,
)
from sync_pipeline.clerk.rate import parse_retry_after
from sync_pipeline.clerk.stats import EndpointStats, FetchStats

__all__ = [
    "ClerkAuthError",
    "ClerkBadIdError",
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
