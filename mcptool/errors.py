"""The root of every error a user can cause.

The CLI prints ``str(error)`` as one line and exits with ``error.exit_code``; so the
message must name the thing that is wrong and, where there is one, the fix.
"""

from __future__ import annotations


class McptoolError(Exception):
    """An error a user can cause and act on: printed as one line, never a traceback."""

    exit_code: int = 1


class UsageError(McptoolError):
    """Bad arguments, a bad config or a bad file named on the command line."""

    exit_code = 2
