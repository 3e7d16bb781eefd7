"""What a Clerk id can look like, said once for every place that takes one from outside.

A webhook body, a CLI flag or a run's config can carry any string; only ids of Clerk's
shape may reach a URL or a query. Clerk's ids are a prefix, an underscore and a base62
body (``user_2x…``, ``org_…``, ``orgmem_…``); the check here is deliberately looser than
that (any ASCII letters, digits, ``_`` and ``-``, bounded length) so that a change in
Clerk's alphabet does not lock real ids out, while path segments (``.``, ``..``), slashes,
query characters, whitespace and absurd lengths never pass.
"""

from __future__ import annotations

import re
from urllib.parse import quote

# Clerk's ids are about 30 characters; 128 leaves room for any future format.
MAX_ID_LENGTH = 128
_ID_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def id_problem(value: object) -> str | None:
    """Why ``value`` cannot be a Clerk id, in a few words, or ``None`` when it can."""
    if not isinstance(value, str):
        return f"not a string ({type(value).__name__})"
    if not value:
        return "empty"
    if len(value) > MAX_ID_LENGTH:
        return f"{len(value)} characters long (at most {MAX_ID_LENGTH})"
    if not _ID_SHAPE.fullmatch(value):
        return "has characters a Clerk id never has (only letters, digits, '_' and '-')"
    return None


def is_clerk_id(value: object) -> bool:
    return id_problem(value) is None


def path_segment(value: str) -> str:
    """``value`` encoded as one URL path segment; refuses what is not a Clerk id.

    Percent-encoding alone does not make ``..`` safe (it has nothing to encode, and an
    HTTP client resolves it as "up one level"), so the shape is checked first.
    """
    problem = id_problem(value)
    if problem is not None:
        shown = repr(value[:40]) + "…" if isinstance(value, str) and len(value) > 40 else repr(value)
        raise ValueError(f"{shown} is not a Clerk id: {problem}")
    return quote(value, safe="")
