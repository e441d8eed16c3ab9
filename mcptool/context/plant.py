"""The plant as an agent sees it: devices and their points, with names, units, types,
descriptions and what may be written, taken from the edge config (never from a register
address an agent would have to know)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from mcptool.gateway.config import GatewayConfig

__all__ = ["DeviceDescription", "PlantDescription", "PointDescription", "describe"]


class PointDescription(BaseModel):
    name: str
    unit: str = Field(description="unit of measure, empty if none")
    type: str = Field(description="data type: bool, int16, ..., float32, string")
    table: str = Field(description="Modbus table: coil, discrete, input, holding")
    description: str = ""
    writable: bool = False
    min: float | None = Field(default=None, description="lowest value a write may set")
    max: float | None = Field(default=None, description="highest value a write may set")


class DeviceDescription(BaseModel):
    name: str
    address: str = Field(description="host:port of the device, and its Modbus unit id")
    interval_s: float = Field(description="how often the gateway polls it")
    description: str = ""
    points: list[PointDescription]


class PlantDescription(BaseModel):
    node: str = Field(description="the edge node's name")
    devices: list[DeviceDescription]


def describe(config: GatewayConfig) -> PlantDescription:
    """Every device and point of ``config``, in config order."""
    devices = []
    for spec in config.devices:
        points = []
        for point in spec.points:
            info = config.info(spec.name, point.name)
            points.append(
                PointDescription(
                    name=point.name,
                    unit=point.unit,
                    type=point.type.value,
                    table=point.table.value,
                    description=info.description,
                    writable=info.writable,
                    min=info.min,
                    max=info.max,
                )
            )
        host = f"[{spec.host}]" if ":" in spec.host else spec.host
        devices.append(
            DeviceDescription(
                name=spec.name,
                address=f"{host}:{spec.port} unit {spec.unit}",
                interval_s=spec.interval,
                description=config.descriptions.get(spec.name, ""),
                points=points,
            )
        )
    return PlantDescription(node=config.node, devices=devices)
