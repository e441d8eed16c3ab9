"""Option types every command shares, so that a bad value is refused when it is parsed.

``Float`` and ``Int`` are click's ``FloatRange`` and ``IntRange`` (so ``--help`` shows the
range the same way) with ``mcptool.numbers.Range`` deciding what passes: NaN and the
infinities never do, and the refusal states the range. ``Url``, ``NodeId``, ``ModelName``,
``Host`` and ``Text`` check the other values a user types. Every refusal reads like the
project's other errors: ``--heartbeat nan: not a finite number: give a number from 0.01
to 3600`` (docs/CLI.md). tests/commands/test_bad_input.py walks the command tree.
"""

from __future__ import annotations

from typing import Any, NoReturn
from urllib.parse import urlsplit

import click

from mcptool.numbers import NumberError, Range

__all__ = ["BadValue", "Float", "Host", "Int", "ModelName", "NodeId", "Text", "Url", "plural"]


class BadValue(click.BadParameter):
    """``--option VALUE: problem: fix`` (click's own wording names neither value nor fix)."""

    names_the_fix = True  # so the CLI adds no "see --help" to the line

    def __init__(self, message: str, value: str, ctx: Any = None, param: Any = None) -> None:
        super().__init__(message, ctx=ctx, param=param)
        self.value = value

    def format_message(self) -> str:
        # the option as the user wrote it (its first spelling), an argument by its metavar
        name = "value"
        if self.param is not None:
            first = self.param.opts[0] if self.param.opts else self.param.name or name
            name = first if first.startswith("-") else first.upper()
        return f"{name} {shown(self.value)}: {self.message}"


def shown(value: str) -> str:
    """A value as a user typed it, short, and printable even when it is not UTF-8."""
    text = value if len(value) <= 60 else value[:57] + "..."
    if not text or not text.isprintable() or " " in text:
        return repr(text)
    return text


def fail(message: str, value: object, param: Any, ctx: Any) -> NoReturn:
    raise BadValue(message, str(value), ctx=ctx, param=param)


class Float(click.FloatRange):
    """A finite float, optionally bounded: ``Float(0, 3600, min_open=True)``."""

    name = "number"

    def __init__(
        self,
        min: float | None = None,  # click's own parameter names
        max: float | None = None,
        min_open: bool = False,
        max_open: bool = False,
    ) -> None:
        super().__init__(min, max, min_open, max_open)
        self.range = Range(min, max, min_open, max_open)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            text = repr(value)  # a default, or a value given from Python
        else:
            text = str(value)
        try:
            return float(self.range.parse(text))
        except NumberError as exc:
            fail(str(exc), value, param, ctx)


class Int(click.IntRange):
    """A whole number, optionally bounded: ``Int(1, 255)``."""

    name = "integer"

    def __init__(
        self,
        min: int | None = None,
        max: int | None = None,
    ) -> None:
        super().__init__(min, max)
        self.range = Range(min, max, integer=True)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        try:
            return int(self.range.parse(str(value)))
        except NumberError as exc:
            fail(str(exc), value, param, ctx)


class Url(click.ParamType):
    """``SCHEME://HOST[:PORT]`` with one of ``schemes``; ``HOST:PORT`` gets the first.

    The text is returned as given (with the scheme added when it had none): the library
    parses it again, but by then it is known to work. A bare word is refused: ``--mqtt
    broker`` is more likely a slip than a host named ``broker``; ``broker:1883`` is fine.
    """

    name = "url"

    def __init__(self, *schemes: str, path: bool = False, bare_host: bool = False) -> None:
        self.schemes = schemes
        self.path = path  # a path prefix is part of the address (Ollama behind a proxy)
        self.bare_host = bare_host  # OLLAMA_HOST style: ``localhost`` alone is a host

    @property
    def example(self) -> str:
        return f"{self.schemes[0]}://host:port"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "URL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value)
        if not text.isprintable() or " " in text:  # surrogates: bytes that were not UTF-8
            fail(f"not a URL: use {self.example}", text, param, ctx)
        if "://" not in text:
            host, sep, port = text.rpartition(":")
            if not (sep and host and port.isdigit()) and not (self.bare_host and text.strip()):
                fail(f"not a URL: use {self.example}", text, param, ctx)
            text = f"{self.schemes[0]}://{text}"
        parts = urlsplit(text)
        if parts.scheme.lower() not in self.schemes:
            *others, last = [f"{scheme}://" for scheme in self.schemes]
            starts = f"{', '.join(others)} or {last}" if others else last
            fail(f"must start with {starts}, e.g. {self.example}", value, param, ctx)
        try:
            port = parts.port
        except ValueError:
            fail("the port is not a number from 1 to 65535", value, param, ctx)
        if port == 0:
            fail("the port is not a number from 1 to 65535", value, param, ctx)
        if not parts.hostname:
            fail(f"names no host: use {self.example}", value, param, ctx)
        if (parts.path not in ("", "/") and not self.path) or parts.query or parts.fragment:
            fail(f"has a path or query: use just {self.example}", value, param, ctx)
        return text


class NodeId(click.ParamType):
    """A node id as HELLO carries it: 1 to 64 bytes of UTF-8, no spaces (keys files split
    on them), printable."""

    name = "node id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value)
        try:
            size = len(text.encode())
        except UnicodeEncodeError:
            fail("not UTF-8: a node id is UTF-8 text", text, param, ctx)
        if not 1 <= size <= 64:
            fail(f"{size} bytes: a node id is 1 to 64 bytes (HELLO's limit)", text, param, ctx)
        if any(c.isspace() or not c.isprintable() for c in text):
            fail(
                "has spaces or control characters: use the id of the hub's keys file",
                text,
                param,
                ctx,
            )
        return text


class ModelName(click.ParamType):
    """An Ollama model name (``llama3.2``, ``qwen2.5:7b``, ``user/model:tag``): not empty,
    no spaces (Ollama would answer 400 or, from a simulator, offer ``:latest``)."""

    name = "model"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value)
        if not text.strip():
            fail("empty: name a model, e.g. llama3.2", text, param, ctx)
        if any(c.isspace() or not c.isprintable() for c in text) or text.startswith(":"):
            fail("not a model name: e.g. llama3.2 or qwen2.5:7b", text, param, ctx)
        return text


class Text(click.ParamType):
    """Text that was UTF-8 on the command line (Python hands over other bytes as lone
    surrogates, which no JSON body or wire format can carry)."""

    name = "text"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value)
        try:
            text.encode()
        except UnicodeEncodeError as exc:
            fail(f"not UTF-8 at character {exc.start}: give UTF-8 text", text, param, ctx)
        return text


class Host(click.ParamType):
    """A host name or address to listen on or connect to: printable, no spaces."""

    name = "host"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value)
        if not text or not text.isprintable() or " " in text:
            fail("not a host name or address: e.g. 127.0.0.1 or ::1", text, param, ctx)
        return text


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 device``, ``2 devices``; ``many`` for words that do not just take an s."""
    return f"{count} {word if count == 1 else many or word + 's'}"
