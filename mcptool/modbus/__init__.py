"""Modbus/TCP: register data types and maps, probe and scan, the poller.

Public API, one block per module; ``__all__`` lists every name the blocks import.
"""

# --- data types and byte/word orders (mcptool.modbus.datatypes) ---
from mcptool.modbus.datatypes import ORDERS as ORDERS
from mcptool.modbus.datatypes import TYPES as TYPES
from mcptool.modbus.datatypes import Codec as Codec
from mcptool.modbus.datatypes import DataTypeError as DataTypeError
from mcptool.modbus.datatypes import codec as codec
from mcptool.modbus.datatypes import decode as decode
from mcptool.modbus.datatypes import encode as encode
from mcptool.modbus.datatypes import normalize_order as normalize_order
from mcptool.modbus.datatypes import normalize_type as normalize_type
from mcptool.modbus.datatypes import register_count as register_count
from mcptool.modbus.datatypes import swap_bytes as swap_bytes

# --- the core: function entries, timeouts (mcptool.modbus.functions, .timeouts) ---
# isort: split
from mcptool.modbus.functions import FUNCTIONS as FUNCTIONS
from mcptool.modbus.functions import Function as Function
from mcptool.modbus.functions import PduError as PduError
from mcptool.modbus.functions import exception_name as exception_name
from mcptool.modbus.functions import register as register
from mcptool.modbus.timeouts import Timeouts as Timeouts

# --- framings and links (mcptool.modbus.framing, .rtu, .serial_line) ---
# isort: split
from mcptool.modbus.framing import FramingName as FramingName
from mcptool.modbus.serial_line import SerialBus as SerialBus
from mcptool.modbus.serial_line import SerialPortError as SerialPortError
from mcptool.modbus.serial_line import SerialSettings as SerialSettings

# --- probe and scan (mcptool.modbus.probe, mcptool.modbus.scan) ---
# isort: split
from mcptool.modbus.connection import ModbusConnection as ModbusConnection
from mcptool.modbus.connection import Outcome as Outcome
from mcptool.modbus.identify import identify as identify
from mcptool.modbus.mbap import MalformedField as MalformedField
from mcptool.modbus.pdu import ProbeRequest as ProbeRequest
from mcptool.modbus.pdu import ReadOnlyError as ReadOnlyError
from mcptool.modbus.probe import Identity as Identity
from mcptool.modbus.probe import ProbeResult as ProbeResult
from mcptool.modbus.probe import ResolveError as ResolveError
from mcptool.modbus.probe import probe as probe
from mcptool.modbus.probe import probe_sync as probe_sync
from mcptool.modbus.scan import Scanner as Scanner
from mcptool.modbus.scan import ScanOptions as ScanOptions
from mcptool.modbus.scan import ScanSummary as ScanSummary
from mcptool.modbus.scan import scan as scan
from mcptool.modbus.targets import Target as Target
from mcptool.modbus.targets import TargetError as TargetError
from mcptool.modbus.targets import parse_units as parse_units
from mcptool.modbus.targets import resolve_targets as resolve_targets

# isort: split

# --- register maps and the poller (mcptool.modbus.registermap, mcptool.modbus.poller) ---
from mcptool.modbus.poller import DeviceSpec as DeviceSpec
from mcptool.modbus.poller import DeviceStatus as DeviceStatus
from mcptool.modbus.poller import ErrorKind as ErrorKind
from mcptool.modbus.poller import Poller as Poller
from mcptool.modbus.poller import PollerHooks as PollerHooks
from mcptool.modbus.poller import PollError as PollError
from mcptool.modbus.poller import PollResult as PollResult
from mcptool.modbus.registermap import ByteOrder as ByteOrder
from mcptool.modbus.registermap import DataType as DataType
from mcptool.modbus.registermap import Point as Point
from mcptool.modbus.registermap import ReadRequest as ReadRequest
from mcptool.modbus.registermap import Table as Table
from mcptool.modbus.registermap import plan_reads as plan_reads

__all__ = [
    "FUNCTIONS",
    "ORDERS",
    "TYPES",
    "ByteOrder",
    "Codec",
    "DataType",
    "DataTypeError",
    "DeviceSpec",
    "DeviceStatus",
    "ErrorKind",
    "FramingName",
    "Function",
    "Identity",
    "MalformedField",
    "ModbusConnection",
    "Outcome",
    "PduError",
    "Point",
    "PollError",
    "PollResult",
    "Poller",
    "PollerHooks",
    "ProbeRequest",
    "ProbeResult",
    "ReadOnlyError",
    "ReadRequest",
    "ResolveError",
    "ScanOptions",
    "ScanSummary",
    "Scanner",
    "SerialBus",
    "SerialPortError",
    "SerialSettings",
    "Table",
    "Target",
    "TargetError",
    "Timeouts",
    "codec",
    "decode",
    "encode",
    "exception_name",
    "identify",
    "normalize_order",
    "normalize_type",
    "parse_units",
    "plan_reads",
    "probe",
    "probe_sync",
    "register",
    "register_count",
    "resolve_targets",
    "scan",
    "swap_bytes",
]
