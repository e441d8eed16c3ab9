"""The ``mcptool`` command: one entry point, one sub-command per job.

Sub-commands live in ``mcptool/commands/`` and are imported only when used, so that
``mcptool frame decode`` does not pay for importing pymodbus, httpx and aiomqtt.
Every error a user can cause is printed as one line with a non-zero exit code; a
traceback appears only for a bug, and only with ``--debug``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence

import click

from mcptool import __version__
from mcptool.errors import McptoolError


class LazyGroup(click.Group):
    """A click group whose sub-commands are ``module:attribute`` strings, imported on use."""

    def __init__(self, *args: object, lazy: dict[str, str] | None = None, **kwargs: object):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = dict(lazy or {})

    def _available(self, name: str) -> bool:
        module = self.lazy[name].partition(":")[0]
        return importlib.util.find_spec(module) is not None

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx))
        names.update(name for name in self.lazy if self._available(name))
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and self._available(cmd_name):
            module_name, _, attr = self.lazy[cmd_name].partition(":")
            command = getattr(importlib.import_module(module_name), attr)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
            return command
        return super().get_command(ctx, cmd_name)


COMMANDS = {
    "frame": "mcptool.commands.frame:frame",
    "simulate": "mcptool.commands.simulate:simulate",
    "probe": "mcptool.commands.probe:probe",
    "read": "mcptool.commands.read:read",
    "write": "mcptool.commands.write:write",
    "capture": "mcptool.commands.capture:capture",
    "scan": "mcptool.commands.scan:scan",
    "ollama": "mcptool.commands.ollama:ollama",
    "hub": "mcptool.commands.hub:hub",
    "worker": "mcptool.commands.worker:worker",
    "link": "mcptool.commands.link:link",
    "gateway": "mcptool.commands.gateway:gateway",
    "demo": "mcptool.commands.demo:demo",
    "model": "mcptool.commands.model:model",
    # the Model Context Protocol server and its local agent (not MCP, the link's protocol)
    "context": "mcptool.commands.context:context",
    "ask": "mcptool.commands.context:ask",
}


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="mcptool")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """mcptool: probe, scan and simulate Modbus devices, speak MCP, run an edge gateway."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def one_line(message: str) -> str:
    return " ".join(message.split())


def help_hint(ctx: click.Context | None) -> str:
    return f" (see `{ctx.command_path} --help`)" if ctx is not None else ""


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI and turn every outcome into an exit code and at most one error line."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        rv = cli.main(args, prog_name="mcptool", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        # one line, like every other user error, instead of click's usage block
        hint = "" if getattr(exc, "names_the_fix", False) else help_hint(exc.ctx)
        click.echo(f"error: {one_line(exc.format_message())}{hint}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"error: {one_line(exc.format_message())}", err=True)
        sys.exit(exc.exit_code)
    except McptoolError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        # `mcptool ... | head`: the reader left; nothing to report.
        sys.stderr.close()
        sys.exit(0)
    except Exception as exc:  # a bug, not a user error: say so, in one line
        if debug:
            raise
        click.echo(
            f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)",
            err=True,
        )
        sys.exit(70)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
