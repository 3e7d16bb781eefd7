"""Errors a user can act on. Each one's ``str()`` is one line that names what to fix."""


class SyncPipelineError(Exception):
    """Base for every error the CLI reports as one line instead of a traceback."""


class ConfigurationError(SyncPipelineError):
    """A setting is missing or wrong (an environment variable, a run config value)."""


class DatabaseUnavailableError(SyncPipelineError):
    """The mirror database cannot be reached or refused the connection."""


class DeleteGuardRefused(SyncPipelineError):
    """A sync would delete more of a table than the guard allows."""


class SyncLockTimeout(SyncPipelineError):
    """Another sync held the write lock for longer than this one would wait."""
