"""The `gansmith` command: a thin layer over the Python API.

Each concern keeps its commands in its own module here; this file only assembles them and turns
`UserError` into one line on stderr and exit code 2.
"""
from __future__ import annotations

import math
import sys
import warnings

import click

from ..errors import UserError
from .. import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="gansmith")
def cli():
    """gansmith: train GANs on your own images, repaint photos, and measure the results."""


class Finite(click.FloatRange):
    """A number option within a range that is also finite (click's FloatRange lets nan and inf through)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value} is not a finite number", param, ctx)
        return number


def seed_type() -> click.IntRange:
    from ..training.config import MAX_SEED  # the seed range of training, for every command's --seed
    return click.IntRange(0, MAX_SEED)


def _register_commands():
    """Each module adds its commands to `cli` when imported (imported here, late, to keep --help fast)."""
    from . import export, metrics, report, style, train  # noqa: F401


def show_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings reach a CLI user as one plain line, not a source location."""
    click.echo(f"warning: {message}", err=True)


def main(argv=None):
    from ..training.signals import sigterm_as_interrupt
    with sigterm_as_interrupt():  # a SIGTERM while the commands are imported ends like one later: exit 130
        return run_command(argv)


def run_command(argv):
    warnings.showwarning = show_warning
    try:
        _register_commands()
        return cli.main(args=argv, prog_name="gansmith", standalone_mode=False)
    except UserError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except OSError as e:  # a path the system refuses (too long, no permission, ...): the user's to fix
        click.echo(f"error: cannot use {e.filename or 'a path'}: {e.strerror or e}", err=True)
        sys.exit(2)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.UsageError as e:
        hint = f" (see: {e.ctx.command_path if e.ctx else 'gansmith'} --help)"
        click.echo(f"error: {e.format_message()}{hint}", err=True)
        sys.exit(2)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
