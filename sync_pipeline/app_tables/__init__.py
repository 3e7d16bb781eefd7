"""The application's own tables, kept consistent with Clerk by the same sync as the mirror.

A YAML file (``SYNC_APP_TABLES``) declares each table keyed by a Clerk user or
organization id and its policies: what happens to rows whose owner Clerk no longer has,
which rows must exist for every live user or membership, which key must be unique.

- :mod:`.config` -- the file and its shape, with one-line errors naming the bad key;
- :mod:`.catalog` -- the names checked against the database, the quoted SQL that uses them;
- :mod:`.snapshot` -- the rows in a sync's scope (I/O);
- :mod:`.rules` -- the diff: missing, orphaned, duplicate rows (pure pandas);
- :mod:`.apply` -- the writes, inside the mirror's apply transaction;
- :mod:`.integrity` -- foreign keys to the mirror and unique indexes, once the data allows.
"""
