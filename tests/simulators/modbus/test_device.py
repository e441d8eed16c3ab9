"""The device model: tables, reads and writes, identification, gateway behaviour.

These drive ``DeviceState.handle`` with request PDUs directly (no socket), so each rule
of the Modbus application protocol is one small test.
"""

from __future__ import annotations

import struct

import pytest

from mcptool.modbus import functions
from mcptool.modbus.datatypes import decode
from simulators.modbus import DeviceProfile, Identity, Point, ServerId, UnitProfile, load_profile
from simulators.modbus.device import DeviceState
from tests.simulators.modbus.conftest import PROFILES, FakeClock


def _device(profile: DeviceProfile, clock: FakeClock | None = None) -> DeviceState:
    return DeviceState(profile, clock or FakeClock())


def _regs(reply: bytes) -> list[int]:
    assert reply[0] in (3, 4), reply.hex()
    return list(struct.unpack(f">{reply[1] // 2}H", reply[2:]))


def read(fc: int, address: int, count: int) -> bytes:
    return struct.pack(">BHH", fc, address, count)


@pytest.fixture
def plain() -> DeviceState:
    return _device(
        DeviceProfile(
            points=[
                Point("holding", 0, "uint16", value=1),
                Point("holding", 1, "uint16", value=2, writable=False),
                Point("holding", 2, "float32", value=1.5),
                Point("input", 0, "int16", value=-2),
                *[Point("coil", i, value=i % 3 == 0) for i in range(10)],
                Point("discrete", 0, value=True),
            ]
        )
    )


def test_reads_every_table(plain: DeviceState) -> None:
    assert _regs(plain.handle(1, read(3, 0, 4))) == [1, 2, 0x3FC0, 0]
    assert _regs(plain.handle(1, read(4, 0, 1))) == [0xFFFE]
    # coils 0..9 = 1001001001 -> LSB first: 0b01001001, 0b00000010
    assert plain.handle(1, read(1, 0, 10)) == bytes([1, 2, 0x49, 0x02])
    assert plain.handle(1, read(2, 0, 1)) == bytes([2, 1, 1])


def test_unmapped_addresses_answer_illegal_data_address(plain: DeviceState) -> None:
    assert plain.handle(1, read(3, 3, 2)) == bytes([0x83, 2])  # runs past the float
    assert plain.handle(1, read(3, 100, 1)) == bytes([0x83, 2])
    assert plain.handle(1, read(2, 1, 1)) == bytes([0x82, 2])


def test_unmapped_zero_makes_all_memory_readable() -> None:
    device = _device(DeviceProfile(points=[Point("holding", 5, value=9)], unmapped="zero"))
    assert _regs(device.handle(1, read(3, 0, 125)))[:7] == [0, 0, 0, 0, 0, 9, 0]
    assert device.handle(1, read(3, 65535, 1)) == bytes([3, 2, 0, 0])


@pytest.mark.parametrize(
    ("pdu", "reply"),
    [
        (read(3, 0, 0), bytes([0x83, 3])),
        (read(3, 0, 126), bytes([0x83, 3])),
        (read(1, 0, 2001), bytes([0x81, 3])),
        (bytes([3, 0, 0]), bytes([0x83, 3])),
        (bytes([0x07]), bytes([0x87, 1])),
        (bytes([0x2B, 0x0D, 0, 0]), bytes([0xAB, 1])),
        (bytes([5, 0, 0, 0x12, 0x34]), bytes([0x85, 3])),
    ],
)
def test_bad_requests_get_the_exception_the_spec_names(
    plain: DeviceState, pdu: bytes, reply: bytes
) -> None:
    assert plain.handle(1, pdu) == reply


# Requests the core builds for each function the device implements (it answers them all).
CORE_REQUESTS = {
    0x01: functions.READ_COILS.request(0, 8),
    0x02: functions.READ_DISCRETE_INPUTS.request(0, 1),
    0x03: functions.READ_HOLDING_REGISTERS.request(0, 4),
    0x04: functions.READ_INPUT_REGISTERS.request(0, 1),
    0x05: functions.WRITE_SINGLE_COIL.request(3, True),
    0x06: functions.WRITE_SINGLE_REGISTER.request(0, 7),
    0x0F: functions.WRITE_MULTIPLE_COILS.request(0, [True, False]),
    0x10: functions.WRITE_MULTIPLE_REGISTERS.request(2, [1, 2]),
}


@pytest.mark.parametrize("code", sorted(CORE_REQUESTS), ids=lambda code: f"fc{code:#04x}")
def test_the_device_judges_requests_by_the_core_rules_the_clients_use(
    plain: DeviceState, code: int
) -> None:
    # One rule for "well formed" on both ends: what the core builds is answered and the
    # core parses the answer; the same PDU with a byte more is refused (0x03), as the
    # core's read-only guard refuses it on the client side.
    request = CORE_REQUESTS[code]
    entry = functions.FUNCTIONS[code]
    reply = plain.handle(1, request)
    assert reply[0] == code, reply.hex()
    assert len(reply) == entry.response_size(request)
    assert plain.handle(1, request + b"\x00") == bytes([0x80 | code, 3])


def test_writes_are_echoed_and_read_back(plain: DeviceState) -> None:
    assert plain.handle(1, bytes([6, 0, 0, 0x12, 0x34])) == bytes([6, 0, 0, 0x12, 0x34])
    assert plain.handle(1, bytes([16, 0, 2, 0, 2, 4, 0x40, 0x49, 0x0F, 0xDB])) == bytes(
        [16, 0, 2, 0, 2]
    )
    assert _regs(plain.handle(1, read(3, 0, 1))) == [0x1234]
    assert plain.handle(1, bytes([5, 0, 1, 0xFF, 0])) == bytes([5, 0, 1, 0xFF, 0])
    assert plain.handle(1, bytes([15, 0, 4, 0, 3, 1, 0b101])) == bytes([15, 0, 4, 0, 3])
    assert plain.handle(1, read(1, 0, 8)) == bytes([1, 1, 0b01011011])
    assert plain.unit(1).value("holding2") == pytest.approx(3.14159, rel=1e-6)  # type: ignore[union-attr]


def test_mask_write_applies_the_spec_formula_and_echoes(plain: DeviceState) -> None:
    # Spec 6.16's own example: current 0x12, AND 0xF2, OR 0x25 -> 0x17.
    plain.handle(1, bytes([6, 0, 0, 0, 0x12]))
    request = functions.MASK_WRITE_REGISTER.request(0, 0x00F2, 0x0025)
    assert plain.handle(1, request) == request
    assert _regs(plain.handle(1, read(3, 0, 1))) == [0x17]


def test_read_write_registers_writes_before_it_reads(plain: DeviceState) -> None:
    request = functions.READ_WRITE_REGISTERS.request(0, 1, 0, [0xBEEF])
    assert plain.handle(1, request) == bytes([0x17, 2, 0xBE, 0xEF])
    assert _regs(plain.handle(1, read(3, 0, 1))) == [0xBEEF]


def test_mask_and_read_write_refuse_read_only_registers(plain: DeviceState) -> None:
    assert plain.handle(1, functions.MASK_WRITE_REGISTER.request(1, 0, 0xFF)) == bytes([0x96, 2])
    refused = functions.READ_WRITE_REGISTERS.request(0, 1, 1, [9])
    assert plain.handle(1, refused) == bytes([0x97, 2])
    assert plain.handle(1, functions.READ_WRITE_REGISTERS.request(50, 1, 0, [9])) == bytes(
        [0x97, 2]
    )
    # Nothing was written by the refused requests.
    assert _regs(plain.handle(1, read(3, 0, 2))) == [1, 2]


def test_read_only_points_and_input_tables_refuse_writes(plain: DeviceState) -> None:
    assert plain.handle(1, bytes([6, 0, 1, 0, 9])) == bytes([0x86, 2])
    assert plain.handle(1, bytes([16, 0, 0, 0, 2, 4, 0, 1, 0, 2])) == bytes([0x90, 2])
    assert _regs(plain.handle(1, read(3, 0, 2))) == [1, 2]


def test_write_with_inconsistent_byte_count_is_illegal_value(plain: DeviceState) -> None:
    assert plain.handle(1, bytes([16, 0, 0, 0, 2, 3, 0, 1, 0])) == bytes([0x90, 3])
    assert plain.handle(1, bytes([15, 0, 0, 0, 9, 1, 0xFF])) == bytes([0x8F, 3])


def test_a_written_point_stops_following_its_generator() -> None:
    clock = FakeClock()
    device = _device(
        DeviceProfile(points=[Point("holding", 0, value={"kind": "ramp", "rate": 1})]), clock
    )
    clock.advance(5)
    assert _regs(device.handle(1, read(3, 0, 1))) == [5]
    device.handle(1, bytes([6, 0, 0, 0, 42]))
    clock.advance(5)
    assert _regs(device.handle(1, read(3, 0, 1))) == [42]


def test_scale_offset_and_counter_wrap() -> None:
    clock = FakeClock()
    device = _device(
        DeviceProfile(
            points=[
                Point("holding", 0, "int16", value=-12.3, scale=0.1),
                Point("holding", 1, "uint16", value=25.0, scale=0.5, offset=5.0),
                Point("holding", 2, "uint16", value={"kind": "counter", "start": 65534}),
                Point("holding", 3, "uint16", value={"kind": "ramp", "start": 65534}),
            ]
        ),
        clock,
    )
    clock.advance(3)
    regs = _regs(device.handle(1, read(3, 0, 4)))
    assert regs[0] == (-123) & 0xFFFF
    assert regs[1] == 40
    assert regs[2] == 1  # 65537 wraps like a meter
    assert regs[3] == 65535  # anything else sticks at its limit


def test_power_meter_counters_are_cdab() -> None:
    clock = FakeClock()
    device = _device(load_profile(PROFILES / "power_meter.toml"), clock)
    regs = _regs(device.handle(1, read(3, 0, 6)))
    assert decode(regs[0:2], "uint32", "CDAB") == 4_000_000_000
    assert decode(regs[2:4], "uint32", "CDAB") == 1000
    assert decode(regs[4:6], "int32", "CDAB") == -50_000
    clock.advance(2 * 60 * 60)  # 250 Wh/s for 2 h passes 2^32
    regs = _regs(device.handle(1, read(3, 0, 2)))
    assert decode(regs, "uint32", "CDAB") == (4_000_000_000 + 250 * 7200) % 2**32
    serial = _regs(device.handle(1, read(4, 4, 8)))
    assert decode(serial, "string") == "PM3K-0042-A"


# -- identification --------------------------------------------------------------------


def _objects(reply: bytes) -> tuple[int, int, int, dict[int, bytes]]:
    """(conformity, more_follows, next_object_id, objects) of a 0x2B/0x0E reply."""
    assert reply[:2] == bytes([0x2B, 0x0E]), reply.hex()
    conformity, more, next_id, n = reply[3], reply[4], reply[5], reply[6]
    objs, pos = {}, 7
    for _ in range(n):
        obj, length = reply[pos], reply[pos + 1]
        objs[obj] = reply[pos + 2 : pos + 2 + length]
        pos += 2 + length
    assert pos == len(reply)
    return conformity, more, next_id, objs


def test_device_identification_basic_and_regular() -> None:
    device = _device(load_profile(PROFILES / "boiler.toml"))
    conformity, more, _, objs = _objects(device.handle(1, bytes([0x2B, 0x0E, 1, 0])))
    assert objs == {0: b"Acme Heating", 1: b"BX-200", 2: b"2.4"}
    assert more == 0 and conformity == 0x82
    _, _, _, objs = _objects(device.handle(1, bytes([0x2B, 0x0E, 2, 0])))
    assert objs[4] == b"BX-200 boiler controller" and objs[6] == b"boiler room 1"


def test_device_identification_one_object_and_unknown_object() -> None:
    device = _device(load_profile(PROFILES / "boiler.toml"))
    _, _, _, objs = _objects(device.handle(1, bytes([0x2B, 0x0E, 4, 5])))
    assert objs == {5: b"BX-200-G"}
    assert device.handle(1, bytes([0x2B, 0x0E, 4, 0x50])) == bytes([0xAB, 2])
    assert device.handle(1, bytes([0x2B, 0x0E, 9, 0])) == bytes([0xAB, 3])


def test_long_identification_says_more_follows_and_resumes_at_the_next_object() -> None:
    long_identity = Identity(
        vendor_name="V" * 100,
        product_code="P" * 100,
        revision="1.0",
        product_name="N" * 120,
        model_name="M" * 90,
        extended={0x80: "X" * 200},
    )
    device = _device(DeviceProfile(identity=long_identity))
    collected: dict[int, bytes] = {}
    next_id, rounds = 0, 0
    while True:
        conformity, more, next_id, objs = _objects(
            device.handle(1, bytes([0x2B, 0x0E, 3, next_id]))
        )
        assert not set(objs) & set(collected)
        collected |= objs
        rounds += 1
        if more == 0:
            break
        assert more == 0xFF and next_id in (1, 4, 5, 0x80)
    assert rounds > 1
    assert conformity == 0x83
    assert collected == long_identity.objects()


def test_report_server_id() -> None:
    device = _device(DeviceProfile(server_id=ServerId(b"\x42", True, b"BX")))
    assert device.handle(1, bytes([0x11])) == bytes([0x11, 4, 0x42, 0xFF]) + b"BX"


# -- units -------------------------------------------------------------------------------


def test_gateway_answers_its_units_and_0x0b_for_absent_ones() -> None:
    device = _device(load_profile(PROFILES / "gateway.toml"))
    assert device.handle(1, read(3, 8, 2))[0] == 3
    assert device.handle(2, read(3, 0, 2))[0] == 3
    assert device.handle(10, read(3, 100, 1))[0] == 3
    assert device.handle(10, read(3, 0, 1)) == bytes([0x83, 2])
    assert device.handle(3, read(3, 0, 1)) == bytes([0x83, 0x0B])
    assert device.handle(3, bytes([0x11])) == bytes([0x91, 0x0B])


def test_absent_units_can_get_0x0a_or_silence() -> None:
    units = [UnitProfile(1, [Point("holding", 0)])]
    assert _device(DeviceProfile(units=units, absent_unit=0x0A)).handle(2, read(3, 0, 1)) == (
        bytes([0x83, 0x0A])
    )
    assert _device(DeviceProfile(units=units, absent_unit=None)).handle(2, read(3, 0, 1)) is None


def test_answer_all_units_serves_any_unit_id() -> None:
    device = _device(DeviceProfile(points=[Point("holding", 0, value=7)], answer_all_units=True))
    assert [_regs(device.handle(u, read(3, 0, 1))) for u in (0, 1, 17, 255)] == [[7]] * 4


def test_set_value_pins_a_point() -> None:
    device = _device(load_profile(PROFILES / "boiler.toml"))
    unit = device.unit(1)
    assert unit is not None
    unit.set_value("supply_temperature", 99.5)
    assert decode(_regs(device.handle(1, read(3, 0, 2))), "float32") == 99.5
    assert unit.value("supply_temperature") == 99.5
