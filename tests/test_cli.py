"""The ``mcptool`` command's contract: version, help, and one-line errors with exit codes."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from mcptool import __version__
from mcptool.cli import cli, main
from mcptool.errors import McptoolError, UsageError


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcptool", *args], capture_output=True, text=True, timeout=60
    )


def test_version_prints_the_package_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_help_lists_sub_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "frame" in result.stdout


def test_unknown_command_is_a_usage_error_without_traceback() -> None:
    result = run("no-such-command")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "No such command" in result.stderr


@pytest.mark.parametrize(
    ("error", "code"), [(McptoolError("device 7 is gone"), 1), (UsageError("bad --port 0"), 2)]
)
def test_user_errors_are_one_line_with_their_exit_code(
    error: McptoolError, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    @cli.command("raise-for-test")
    def raise_for_test() -> None:
        raise error

    try:
        with pytest.raises(SystemExit) as exited:
            main(["raise-for-test"])
    finally:
        cli.commands.pop("raise-for-test")
    assert exited.value.code == code
    err = capsys.readouterr().err
    assert err == f"error: {error}\n"


def test_internal_errors_are_one_line_unless_debug(capsys: pytest.CaptureFixture[str]) -> None:
    @cli.command("bug-for-test")
    def bug_for_test() -> None:
        raise ZeroDivisionError("oops")

    try:
        with pytest.raises(SystemExit) as exited:
            main(["bug-for-test"])
        assert exited.value.code == 70
        assert capsys.readouterr().err.count("\n") == 1
        with pytest.raises(ZeroDivisionError):
            main(["--debug", "bug-for-test"])
    finally:
        cli.commands.pop("bug-for-test")
    assert isinstance(cli, click.Group)


def commands(group: click.Group, path: str = "mcptool") -> list[tuple[str, click.Command]]:
    ctx = click.Context(group)
    found: list[tuple[str, click.Command]] = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        found.append((f"{path} {name}", command))
        if isinstance(command, click.Group):
            found.extend(commands(command, f"{path} {name}"))
    return found


def test_every_command_and_every_option_has_help() -> None:
    found = commands(cli)  # type: ignore[arg-type]
    assert len(found) > 20  # the walk reached the sub-commands of the lazy groups
    missing = [
        f"{path} {param.opts[0]}"
        for path, command in [("mcptool", cli), *found]
        for param in command.params
        if isinstance(param, click.Option) and not (param.help or "").strip()
    ]
    missing += [path for path, command in found if not (command.help or "").strip()]
    assert missing == []


def test_click_usage_errors_are_one_line_too(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["probe"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "error: Missing argument 'TARGET...'. (see `mcptool probe --help`)\n"
    )
