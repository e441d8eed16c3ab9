"""Targets for probe and scan: what a user types, turned into addresses and ports.

Accepted forms: ``host``, ``host:port``, ``[v6]:port``, a bare IPv6 address, CIDR ranges
(``192.168.1.0/24``, ``192.168.1.0/24:1502``, ``[fd00::/120]:502``), host names (resolved
once, up front, so a typo fails before any probe is sent), and files of such targets
(``@targets.txt``, one or more per line, ``#`` starts a comment). Unit-id sweeps are
written as ``1-247`` or ``1,2,10-20``.

How the PDUs are framed is part of the target (docs/PROBE.md, "Serial lines and RTU over
TCP"): ``tcp://HOST:PORT`` or a bare ``HOST:PORT`` is Modbus/TCP (or RTU over TCP when
the command's ``--framing rtu`` says so), ``rtu-tcp://HOST:PORT`` is RTU over TCP (a
serial-to-Ethernet converter), and ``rtu:///dev/ttyUSB0?baudrate=9600&parity=N`` or a
bare device path (``/dev/ttyUSB0``, ``COM3``) is a serial line, with the command's
``--baudrate``/``--parity``/``--stopbits`` for what the URL leaves out.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mcptool.errors import UsageError
from mcptool.modbus.framing import FramingName
from mcptool.modbus.serial_line import SerialSettings, parse_serial

#: The largest range one CIDR may expand to (a /16 of IPv4).
MAX_RANGE = 65_536


class TargetError(UsageError):
    """A target that cannot be parsed or resolved; the message names it."""


@dataclass(frozen=True, slots=True)
class Target:
    """One endpoint to probe: the address to connect to and what the user called it."""

    address: str  # the IP address, or the serial port
    port: int  # 0 for a serial line
    name: str | None = None  # the host name it came from, if any
    framing: FramingName = FramingName.TCP
    serial: SerialSettings | None = None  # the line's settings, for a serial port

    @property
    def label(self) -> str:
        return label(self.address, self.port, self.framing)


def label(address: str, port: int, framing: str = FramingName.TCP) -> str:
    """``host:port``; ``rtu-tcp://host:port`` for RTU over TCP; the port of a serial line."""
    if not port:
        return address
    host = f"[{address}]" if ":" in address else address
    return f"{host}:{port}" if framing == FramingName.TCP else f"{RTU_TCP}{host}:{port}"


RTU_TCP = "rtu-tcp://"
_TCP = "tcp://"


@dataclass(frozen=True, slots=True)
class _Spec:
    text: str
    host: str
    port: int
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    framing: FramingName = FramingName.TCP
    serial: SerialSettings | None = None


def _port(text: str, spec: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise TargetError(f"port {text!r} in {spec!r} is not a port: use 1-65535")
    return int(text)


def _split(text: str, default_port: int) -> tuple[str, int]:
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise TargetError(f"target {text!r}: write IPv6 with a port as [address]:port")
        return host, _port(rest[1:], text) if rest else default_port
    if text.count(":") > 1:  # a bare IPv6 address (or range) without a port
        return text, default_port
    host, sep, port = text.partition(":")
    return host, _port(port, text) if sep else default_port


def parse_target(
    text: str,
    default_port: int = 502,
    framing: FramingName | str = FramingName.TCP,
    serial: SerialSettings | None = None,
) -> _Spec:
    """Parse one target without resolving it (``TargetError`` if it is not a target).

    ``framing`` applies to targets without a scheme; ``serial`` gives the line settings a
    serial target leaves out.
    """
    text = text.strip()
    if not text:
        raise TargetError("empty target: give a host, host:port or a CIDR range")
    line = parse_serial(text, serial)
    if line is not None:
        return _Spec(text, line.port, 0, framing=FramingName.RTU, serial=line)
    framing = FramingName(framing)
    bare = text
    if text.startswith(RTU_TCP):
        bare, framing = text[len(RTU_TCP) :].rstrip("/"), FramingName.RTU
    elif text.startswith(_TCP):
        bare, framing = text[len(_TCP) :].rstrip("/"), FramingName.TCP
    elif "://" in text:
        raise TargetError(
            f"target {text!r}: use tcp://HOST:PORT, rtu-tcp://HOST:PORT (RTU over TCP) or "
            "rtu:///dev/PORT?baudrate=N (a serial line)"
        )
    spec = _parse_host(bare, default_port)
    return _Spec(text, spec.host, spec.port, spec.network, framing)


def _parse_host(text: str, default_port: int) -> _Spec:
    if not text:
        raise TargetError("empty target: give a host, host:port or a CIDR range")
    host, port = _split(text, default_port)
    if not host:
        raise TargetError(f"target {text!r} has no host")
    if "/" in host:
        try:
            network = ipaddress.ip_network(host, strict=False)
        except ValueError:
            raise TargetError(
                f"{host!r} in {text!r} is not a CIDR range: write e.g. 192.168.1.0/24"
            ) from None
        if network.num_addresses > MAX_RANGE:
            raise TargetError(
                f"range {host} has {network.num_addresses} addresses, more than {MAX_RANGE}: "
                "split it into smaller ranges"
            )
        return _Spec(text, host, port, network)
    return _Spec(text, host, port)


def read_target_file(path: str | Path) -> list[str]:
    """The targets listed in a file: whitespace or comma separated, ``#`` comments."""
    try:
        content = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise TargetError(f"cannot read target file {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise TargetError(f"target file {str(path)!r} is not UTF-8 text") from None
    found: list[str] = []
    for line in content.splitlines():
        line = line.partition("#")[0]
        found.extend(word for word in line.replace(",", " ").split() if word)
    return found


def expand_arguments(arguments: Iterable[str], files: Iterable[str | Path] = ()) -> list[str]:
    """Command-line targets with ``@file`` arguments and ``--file`` options read in place."""
    texts: list[str] = []
    for argument in arguments:
        if argument.startswith("@"):
            texts.extend(read_target_file(argument[1:]))
        else:
            texts.append(argument)
    for path in files:
        texts.extend(read_target_file(path))
    return texts


def _hosts(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Iterable[str]:
    # Like ipaddress.hosts(): a network's own address and broadcast are never devices.
    return (str(address) for address in network.hosts())


async def _resolve(host: str, spec: str) -> str:
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        where = "" if spec == host else f" in {spec!r}"
        raise TargetError(
            f"cannot resolve host {host!r}{where} ({exc.strerror}): "
            "check the name or use an IP address"
        ) from None
    return str(infos[0][4][0])


async def resolve_targets(
    texts: Sequence[str],
    default_port: int = 502,
    framing: FramingName | str = FramingName.TCP,
    serial: SerialSettings | None = None,
) -> list[Target]:
    """Parse, expand and resolve targets, dropping duplicates and keeping their order."""
    if not texts:
        raise TargetError("no targets: give a host, host:port, a CIDR range or @file")
    specs = [parse_target(text, default_port, framing, serial) for text in texts]
    texts_by_host = {s.host: s.text for s in specs if s.network is None and s.serial is None}
    names = list(texts_by_host)
    addresses = dict(
        zip(
            names,
            await asyncio.gather(*(_resolve(n, texts_by_host[n]) for n in names)),
            strict=True,
        )
    )
    seen: set[tuple[str, int]] = set()
    targets: list[Target] = []
    for spec in specs:
        if spec.serial is not None:
            if (spec.host, 0) not in seen:
                seen.add((spec.host, 0))
                targets.append(Target(spec.host, 0, None, FramingName.RTU, spec.serial))
            continue
        if spec.network is not None:
            candidates: Iterable[tuple[str, str | None]] = ((a, None) for a in _hosts(spec.network))
        else:
            name = None if addresses[spec.host] == spec.host else spec.host
            candidates = [(addresses[spec.host], name)]
        for address, name in candidates:
            if (address, spec.port) not in seen:
                seen.add((address, spec.port))
                targets.append(Target(address, spec.port, name, spec.framing))
    if len(targets) > 1_000_000:
        raise TargetError(f"{len(targets)} targets is too many for one scan: split it up")
    return targets


def parse_units(text: str) -> list[int]:
    """``1-247``, ``1,2,5-10`` or ``0`` as a sorted list of unit ids (0-255)."""
    units: set[int] = set()
    for part in text.replace(" ", "").split(","):
        low, sep, high = part.partition("-")
        try:
            first = int(low)
            last = int(high) if sep else first
        except ValueError:
            raise TargetError(
                f"unit ids {text!r}: write a list or ranges such as 1-247 or 1,2,10-20"
            ) from None
        if not 0 <= first <= last <= 255:
            raise TargetError(f"unit ids {part!r} in {text!r}: use ranges within 0-255")
        units.update(range(first, last + 1))
    return sorted(units)
