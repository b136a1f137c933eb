"""The project's own exception types.

Every message names what is wrong (the file, the column or line, the field) so that the dashboard
and the CLI can show it as it is.
"""
from __future__ import annotations


class RecDistillError(Exception):
    """Base class of every error RecDistill raises on purpose."""


class DataError(RecDistillError, ValueError):
    """A dataset file or folder that cannot be read or used."""


class ConfigError(RecDistillError, ValueError):
    """A configuration value out of range or inconsistent (the message names the field)."""


class StoreError(RecDistillError):
    """The run store or a weight file cannot be used."""


class JobError(RecDistillError):
    """A background job failed (the message is the job's own)."""
