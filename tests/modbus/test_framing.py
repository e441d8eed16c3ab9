"""Choosing a framing: what a reply that is not Modbus/TCP is (RTU, Modbus ASCII, TLS) and
the option that talks to it; targets that carry their framing or a serial line's
settings; a bad serial port or setting is one line and exit 2."""

from __future__ import annotations

import pytest

from mcptool.cli import main
from mcptool.modbus.framing import FramingName, MbapFraming, foreign
from mcptool.modbus.functions import FUNCTIONS
from mcptool.modbus.mbap import Expectation, Malformed, MalformedField
from mcptool.modbus.outcome import Outcome
from mcptool.modbus.probe import probe
from mcptool.modbus.rtu import frame
from mcptool.modbus.serial_line import SerialPortError, SerialSettings, parse_serial
from mcptool.modbus.targets import TargetError, parse_target
from tests.modbus.peers import raw_server

READ = Expectation(1, 1, 3, 4, True)
RTU_REPLY = bytes.fromhex("01 03 02 00 2a 39 9b")  # the issue's converter, CRC and all


def test_the_issue_s_converter_reply_is_named_rtu_with_the_option() -> None:
    assert frame(1, bytes.fromhex("03 02 00 2a")) == RTU_REPLY
    what = foreign(RTU_REPLY, READ)
    assert what is not None and "RTU frame (unit 1, function 0x03, CRC ok)" in what
    assert "--framing rtu" in what


def test_half_an_rtu_reply_waits_for_the_rest_and_a_bad_crc_is_not_rtu() -> None:
    assert foreign(RTU_REPLY[:5], READ) is None  # NEED_MORE
    assert foreign(RTU_REPLY[:-1] + b"\x00", READ) == ""


def test_modbus_ascii_and_tls_are_named() -> None:
    body = bytes.fromhex("01 03 02 00 2a")
    lrc = (-sum(body)) & 0xFF
    ascii_frame = b":" + (body + bytes((lrc,))).hex().upper().encode() + b"\r\n"
    assert foreign(ascii_frame[:6], READ) is None  # no CR LF yet
    assert "Modbus ASCII frame (unit 1, function 0x03, LRC ok)" in (
        foreign(ascii_frame, READ) or ""
    )
    tls_alert = bytes.fromhex("15 03 03 00 02 02 46")
    assert "TLS record" in (foreign(tls_alert, READ) or "")
    assert foreign(b"SSH-2.0-OpenSSH_9.2\r\n", READ) == ""


def test_the_mbap_framing_puts_the_name_after_the_protocol_id_reason() -> None:
    framing = MbapFraming()
    framing.request(1, FUNCTIONS[3].request(0, 1), FUNCTIONS[3])  # type: ignore[attr-defined]
    assert framing.feed(RTU_REPLY[:4], 0.0) is None  # could still become an RTU frame
    verdict = framing.feed(RTU_REPLY[4:], 0.0)
    assert isinstance(verdict, Malformed) and verdict.field is MalformedField.PROTOCOL_ID
    assert verdict.reason.startswith("protocol id 0x0200, not 0")
    assert "it is an RTU frame" in verdict.reason


async def test_a_probe_of_a_peer_answering_rtu_says_so() -> None:
    async with raw_server(lambda request: RTU_REPLY) as port:
        result = await probe("127.0.0.1", port, timeout=2.0)
    assert result.outcome is Outcome.MALFORMED
    assert "RTU frame" in result.reason and "--framing rtu" in result.reason


def test_targets_carry_their_framing_and_serial_lines_their_settings() -> None:
    assert parse_target("10.0.0.5:4001").framing is FramingName.TCP
    assert parse_target("10.0.0.5:4001", framing="rtu").framing is FramingName.RTU
    converter = parse_target("rtu-tcp://10.0.0.5:4001")
    assert (converter.host, converter.port, converter.framing) == ("10.0.0.5", 4001, "rtu")
    assert parse_target("tcp://10.0.0.5", framing="rtu").framing is FramingName.TCP
    line = parse_target("rtu:///dev/ttyUSB0?baudrate=9600&parity=n&stopbits=2")
    assert line.serial == SerialSettings("/dev/ttyUSB0", 9600, "N", 2)
    assert parse_target("/dev/ttyS1", serial=SerialSettings("-", 38400, "O")).serial == (
        SerialSettings("/dev/ttyS1", 38400, "O", 1)
    )
    with pytest.raises(TargetError, match="rtu-tcp://HOST:PORT"):
        parse_target("modbus://10.0.0.5")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rtu:///dev/ttyUSB0?baud=9600", "serial settings are baudrate, parity"),
        ("rtu:///dev/ttyUSB0?baudrate=fast", "baudrate='fast'"),
        ("rtu:///dev/ttyUSB0?parity=X", "use N (none), E (even) or O (odd)"),
        ("rtu:///dev/ttyUSB0?stopbits=3", "stop bits 3: use 1 or 2"),
        ("rtu:///dev/ttyUSB0?bytesize=7", "RTU needs 8"),
        ("rtu://", "no serial port given"),
    ],
)
def test_a_bad_serial_setting_names_itself_and_the_fix(text: str, message: str) -> None:
    with pytest.raises(SerialPortError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_serial(text)


def test_a_serial_port_that_does_not_exist_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["probe", "/dev/ttyMCPTOOL-none"])
    _, err = capsys.readouterr()
    assert exited.value.code == 2
    assert err.strip().splitlines() == [
        "error: serial port /dev/ttyMCPTOOL-none does not exist: check the name "
        "(ls /dev/ttyUSB* /dev/ttyACM*)"
    ]
