"""Where "now" comes from: a running gateway's current values, or a one-shot typed read.

In the gateway's process (``context serve --gateway``) the context server reads
``Gateway.current``: no Modbus traffic per question, the values the telemetry carries.
Without a gateway it reads the device once per question, through the same core as the
poller (the planned reads of the device's register map, the read-only guard, the typed
decoding), so an agent still gets named, typed values with units and never a register.
"""

from __future__ import annotations

import time
from typing import Protocol

from mcptool.gateway.current import CurrentValue, CurrentValues
from mcptool.gateway.gateway import Gateway
from mcptool.modbus.connection import Failure, ModbusConnection
from mcptool.modbus.functions import exception_name
from mcptool.modbus.poller import DeviceSpec, PollResult
from mcptool.modbus.registermap import Value

__all__ = ["DirectReads", "GatewayValues", "ValueSource"]


class ValueSource(Protocol):
    name: str

    async def read(self, device: DeviceSpec) -> list[CurrentValue]:
        """The latest value of each of ``device``'s points (empty: none yet)."""
        ...


class GatewayValues:
    """The current values of a gateway running in this process."""

    name = "gateway"

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def read(self, device: DeviceSpec) -> list[CurrentValue]:
        return self.gateway.current.device(device.name)


class DirectReads:
    """One poll of the device per call, over a fresh connection (no gateway runs)."""

    name = "direct"

    async def read(self, device: DeviceSpec) -> list[CurrentValue]:
        timestamp = time.time()
        values: list[Value | None] = [None] * len(device.points)
        errors: dict[int, str] = {}
        index = {id(point): i for i, point in enumerate(device.points)}
        connection = await ModbusConnection.open(
            device.host, device.port, connect_timeout=device.connect_timeout
        )
        if isinstance(connection, Failure):
            errors = dict.fromkeys(range(len(device.points)), connection.reason)
        else:
            try:
                for request in device.plan():
                    reply, _ms = await connection.exchange(
                        device.unit, request.pdu, timeout=device.timeout
                    )
                    if isinstance(reply, Failure):
                        reason = reply.reason
                    elif reply.exception_code is not None:
                        code = reply.exception_code
                        reason = f"exception {code:#04x} {exception_name(code)}"
                    else:
                        decoded = request.decode(reply.pdu[2:])
                        for point, value in zip(request.points, decoded, strict=True):
                            values[index[id(point)]] = value
                        continue
                    for point in request.points:
                        errors[index[id(point)]] = reason
            finally:
                connection.close()
        current = CurrentValues([device])
        current.update(PollResult(device.name, timestamp, device.points, values, errors), 0)
        return current.device(device.name)
