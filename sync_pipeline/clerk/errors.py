"""Errors the Clerk client raises.

Every error derives from :class:`ClerkError` and reads as one line that says what went
wrong and, where the operator can do something, what to fix. No message ever contains
the secret key: messages are built from the request path, the HTTP status and Clerk's own
error text, and the client scrubs the key out of Clerk's text before it lands here.
"""

from __future__ import annotations

from typing import Any

_MAX_MESSAGE = 500


def _one_line(text: str) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= _MAX_MESSAGE else flat[: _MAX_MESSAGE - 1] + "…"


def _rebuild(cls: type[ClerkError], message: str, attrs: dict[str, Any]) -> ClerkError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(attrs)
    return error


class ClerkError(Exception):
    """Base class of every error raised by the Clerk client; ``str()`` is one clear line."""

    def __init__(self, message: str) -> None:
        super().__init__(_one_line(message))

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__

    def __reduce__(self):  # keep the attributes when pickled (multiprocess executors)
        return (_rebuild, (self.__class__, str(self), dict(self.__dict__)))


class ClerkConfigError(ClerkError):
    """The client is misconfigured (missing or empty secret key, bad URL, bad limits).

    Raised before any request is sent.
    """


class ClerkAuthError(ClerkError):
    """Clerk answered 401 or 403: the secret key is wrong, revoked or for another instance."""

    def __init__(self, status: int, *, path: str = "") -> None:
        super().__init__(f"Clerk rejected the secret key (HTTP {status}): check CLERK_SECRET_KEY")
        self.status = status
        self.path = path


class ClerkRequestError(ClerkError):
    """Clerk refused a request for a reason retrying won't fix (400, 404 on a list, 422, …).

    Carries Clerk's ``long_message`` (or ``message``), its error ``code`` and trace id.
    """

    def __init__(
        self,
        status: int,
        *,
        path: str,
        long_message: str | None = None,
        code: str | None = None,
        trace_id: str | None = None,
    ) -> None:
        detail = f"HTTP {status}" + (f" {code}" if code else "")
        text = f"Clerk refused {path} ({detail})"
        if long_message:
            text += f": {long_message}"
        if trace_id:
            text += f" [clerk_trace_id {trace_id}]"
        super().__init__(text)
        self.status = status
        self.path = path
        self.long_message = long_message
        self.code = code
        self.trace_id = trace_id


class ClerkUnavailableError(ClerkError):
    """A request still failed after every attempt (5xx, timeouts, dropped connections,
    unparseable bodies), or no request of the sync succeeded for the stall timeout (429s
    included: those never use up attempts). ``last_status`` is the last HTTP status seen, or
    ``None`` when the last attempt got no response at all; ``last_error`` says what happened
    in words; ``stalled_seconds`` is set when the stall timeout ended the run.
    """

    def __init__(
        self,
        *,
        path: str,
        attempts: int,
        last_status: int | None,
        last_error: str,
        stalled_seconds: float | None = None,
    ) -> None:
        if stalled_seconds is not None:
            message = (
                f"Clerk answered no request of this sync successfully for {stalled_seconds:.0f} s "
                f"(last: {last_error} on {path}): the instance is down or its rate limit is taken by "
                "other clients; try again later, or raise CLERK_STALL_TIMEOUT_SECONDS"
            )
        else:
            message = f"Clerk did not answer {path} after {attempts} attempt(s) (last: {last_error})"
        super().__init__(message)
        self.stalled_seconds = stalled_seconds
        self.path = path
        self.attempts = attempts
        self.last_status = last_status
        self.last_error = last_error


class ClerkBadIdError(ClerkError, ValueError):
    """An id handed to a by-id read cannot be a Clerk id; nothing was sent."""

    def __init__(self, what: str, problem: str) -> None:
        super().__init__(f"refusing to read Clerk {what}: {problem}")


class ClerkIncompleteListError(ClerkError):
    """A full scan skipped rows, and too many of them are absent to read again one by one.

    Rows a scan skipped would be planned as deleted, so the run stops before it plans
    anything; the next run reads the list afresh.
    """

    def __init__(self, *, label: str, short_pages: int, unconfirmed: int, total_count: int | None = None) -> None:
        super().__init__(
            f"Clerk's {label} list came back short while it was read ({short_pages} page(s) short of what Clerk "
            f"announced) and {unconfirmed} rows the mirror holds are absent from it, too many to read again by id: "
            "nothing is planned or deleted this run; the next one reads the list afresh"
        )
        self.label = label
        self.total_count = total_count
        self.short_pages = short_pages
        self.unconfirmed = unconfirmed
