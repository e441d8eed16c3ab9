"""``--nats URL[,URL...]``: the servers of a NATS cluster, checked before anything connects."""

from __future__ import annotations

from urllib.parse import urlsplit

import click

__all__ = ["NatsUrls", "require_fleet"]


class NatsUrls(click.ParamType):
    """A comma-separated list of ``nats://HOST:PORT`` (or ``tls://``) URLs."""

    name = "URL[,URL...]"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None):
        if isinstance(value, list):
            return value
        urls = [part.strip() for part in str(value).split(",") if part.strip()]
        if not urls:
            self.fail("give at least one URL, e.g. nats://127.0.0.1:4222", param, ctx)
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("nats", "tls"):
                self.fail(f"{url!r}: use nats://HOST:PORT (or tls://HOST:PORT)", param, ctx)
            try:
                port = parts.port
            except ValueError:
                port = -1
            if not parts.hostname or port is None or not 1 <= port <= 65535:
                self.fail(f"{url!r}: name a host and a port 1..65535, e.g. nats://127.0.0.1:4222",
                          param, ctx)  # fmt: skip
        return urls


def require_fleet(option: str) -> None:
    """One line naming the extra to install when nats-py is missing."""
    try:
        import nats  # noqa: F401
    except ImportError:
        from mcptool.errors import UsageError

        raise UsageError(f"{option} needs the NATS client: pip install 'mcptool[fleet]'") from None
