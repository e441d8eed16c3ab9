"""JSON Lines destination: one line per record (a poll's batch), to a file or stdout.

A record is acknowledged once its line is written and flushed to the OS; files are not
fsynced per line (the spool is the durable copy; a restart may repeat the last lines,
which the sequence numbers identify).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import BinaryIO

from mcptool.gateway.sinks.forwarder import SinkError
from mcptool.gateway.spool import Record

__all__ = ["JsonlTransport"]


class JsonlTransport:
    def __init__(self, path: str, *, base_dir: Path = Path()) -> None:
        self.name = "jsonl"
        self.hint = "check [jsonl] path: its folder must exist and be writable"
        self.path = path
        self.base_dir = base_dir
        self._file: BinaryIO | None = None
        self._lost: asyncio.Future[None] | None = None

    async def connect(self) -> None:
        if self.path == "-":
            self._file = sys.stdout.buffer
        else:
            try:
                self._file = open(self.base_dir / self.path, "ab")  # noqa: SIM115 - kept open
            except OSError as exc:
                raise SinkError(f"jsonl {self.path}: {exc.strerror}") from None
        self._lost = asyncio.get_running_loop().create_future()

    async def send(self, record: Record) -> None:
        file = self._file
        if file is None:
            raise SinkError("jsonl: not open")
        try:
            file.write(record.payload + b"\n")
            file.flush()
        except OSError as exc:
            raise SinkError(f"jsonl {self.path}: {exc.strerror}") from None

    async def watch(self) -> None:
        assert self._lost is not None
        await self._lost

    async def close(self) -> None:
        file, self._file = self._file, None
        if file is not None and file is not sys.stdout.buffer:
            file.close()
