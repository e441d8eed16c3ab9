"""The link's reconnect delays: the project's one backoff (``mcptool.backoff``), here
where the link's users have always found it."""

from mcptool.backoff import Backoff

__all__ = ["Backoff"]
