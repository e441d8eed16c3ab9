"""Simulated Modbus/TCP devices with fault injection, for tests, benchmarks and demos.

```python
from simulators.modbus import ModbusSimulator, load_profile, Fault
async with ModbusSimulator([load_profile("boiler")]) as sim:
    host, port = sim.address
    sim.add_fault(Fault(kind="latency", seconds=0.2, unit=1, function=3))
```
"""

from simulators.modbus.device import DeviceState, UnitState
from simulators.modbus.faults import KINDS as FAULT_KINDS
from simulators.modbus.faults import Fault, FaultError, parse_fault
from simulators.modbus.profile import (
    DeviceProfile,
    Identity,
    Point,
    ProfileError,
    ServerId,
    UnitProfile,
    bundled_profiles,
    load_profile,
    parse_profile,
)
from simulators.modbus.server import Counters, ModbusSimulator, SimulatorError
from simulators.modbus.values import KINDS as VALUE_KINDS
from simulators.modbus.values import ValueSpecError, make_generator

__all__ = [
    "FAULT_KINDS",
    "VALUE_KINDS",
    "Counters",
    "DeviceProfile",
    "DeviceState",
    "Fault",
    "FaultError",
    "Identity",
    "ModbusSimulator",
    "Point",
    "ProfileError",
    "ServerId",
    "SimulatorError",
    "UnitProfile",
    "UnitState",
    "ValueSpecError",
    "bundled_profiles",
    "load_profile",
    "make_generator",
    "parse_fault",
    "parse_profile",
]
