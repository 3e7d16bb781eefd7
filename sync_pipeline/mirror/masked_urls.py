"""A database URL as it may be printed: every password in it masked, whatever form it takes.

libpq takes a password in more places than the URL's ``user:password@``: a ``password=``
query parameter (``postgresql://u@h/db?password=…``, which psycopg passes on), an
``sslpassword=`` for the client key, ``options`` or ``dbname`` values that are
themselves ``key=value`` strings or URLs. SQLAlchemy's ``hide_password`` masks only the
first. Everything that prints a database URL (start-up lines, "cannot connect" errors)
goes through :func:`masked_database_url`, and error text that may quote the URL's parts
through :func:`without_url_secrets`. ``service=`` and ``passfile=`` name where a
password is kept, not the password, so they are shown.
"""

from __future__ import annotations

import re
from urllib.parse import quote, quote_plus, unquote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

MASK = "***"

# Query parameters whose whole value is a secret: password, sslpassword, pgpassword, passwd, …
_SECRET_PARAMETER = re.compile(r"(pass(word|wd)?|secret|token)$", re.IGNORECASE)
# Inside a value (options="-c password=…", dbname="host=h password=…"): key=value pairs and URLs' user:password@.
_SECRET_PAIR = re.compile(
    r"""(?P<key>\b[\w.-]*pass(?:word|wd)?\s*=\s*)(?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s&]+)""",
    re.IGNORECASE,
)
_URL_USERINFO = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<value>[^@\s]+)(?=@)", re.IGNORECASE)


def _masked_text(text: str) -> str:
    text = _SECRET_PAIR.sub(lambda m: m.group("key") + MASK, text)
    return _URL_USERINFO.sub(lambda m: m.group("head") + MASK, text)


def _masked_value(name: str, value: str) -> str:
    return MASK if _SECRET_PARAMETER.search(name) else _masked_text(value)


def _secrets_of(url: URL) -> list[str]:
    """The secret values a URL carries, longest first (for finding them in other text)."""
    found: set[str] = set()
    if url.password:
        found.add(str(url.password))
    for name, values in url.query.items():
        for value in (values,) if isinstance(values, str) else values:
            if _SECRET_PARAMETER.search(name):
                found.add(value)
            else:
                for match in (*_SECRET_PAIR.finditer(value), *_URL_USERINFO.finditer(value)):
                    found.add(match.group("value").strip("'\""))
    return sorted((s for s in found if s and s != MASK), key=len, reverse=True)


def masked_database_url(url: str | URL) -> str:
    """``url`` fit for logs and error messages: its password, and every secret in its query, shown as ***."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except ArgumentError:
        return "<unparseable URL>"
    head = parsed.set(query={}).render_as_string(hide_password=True)
    if not parsed.query:
        return head
    pairs = []
    for name in sorted(parsed.query):
        values = parsed.query[name]
        for value in (values,) if isinstance(values, str) else values:
            pairs.append(f"{quote_plus(name)}={quote(_masked_value(name, value), safe='/:,=*-@')}")
    return f"{head}?{'&'.join(pairs)}"


def without_url_secrets(text: str, url: str | URL | None) -> str:
    """``text`` (a driver's error message, a log line) with every secret of ``url`` in it masked, as typed or encoded."""
    secrets: list[str] = []
    if url is not None:
        try:
            secrets = _secrets_of(url if isinstance(url, URL) else make_url(url))
        except ArgumentError:
            secrets = []
    for secret in secrets:
        for form in {secret, quote(secret, safe=""), quote_plus(secret), unquote(secret)}:
            if form:
                text = text.replace(form, MASK)
    return _masked_text(text)
