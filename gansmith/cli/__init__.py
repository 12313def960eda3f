"""The `gansmith` command: a thin layer over the Python API.

Each concern keeps its commands in its own module here; this file only lists them (imported when used) and
turns `UserError` into one line on stderr and exit code 2.
"""
from __future__ import annotations

import importlib
import math
import os
import sys
import warnings

import click

from ..errors import UserError
from .. import __version__


# Each command's module and its one-line summary. `gansmith --help` lists the summaries without importing any
# command, and `gansmith CMD` imports only CMD's module: PyTorch takes seconds to import, --help should not wait.
COMMANDS = {
    "train": ("train", "Train a GAN on a folder of images (or a .zip, .npz, IDX file)."),
    "sample": ("sample", "Generate new images from a trained run."),
    "demo": ("runs", "Train a few minutes on the built-in Fashion-MNIST and show where the results are."),
    "doctor": ("runs", "Say in plain language how a run is doing, and what to do about it."),
    "report": ("report", "Write RUN/report.html: samples, curves, findings and config on one page."),
    "eval": ("metrics", "Measure a trained run: FID, KID, precision/recall, memorization."),
    "fid": ("metrics", "FID and KID between two image sets; saves or reads FID statistics (.npz)."),
    "sweep": ("train", "Short trials over a grid of options, ranked by KID; prints the winner's command."),
    "interpolate": ("export", "A looping walk through a run's latent space (GIF/MP4, or a grid of tiles)."),
    "export": ("export", "Export a run's generator as ONNX or TorchScript."),
    "mix": ("latent", "The style-mixing grid of a StyleGAN run (coarse styles from rows, fine from columns)."),
    "project": ("latent", "Find the latent whose image reproduces your photo (to morph between your photos)."),
    "style": ("style", "Repaint a photo in the style of a painting (neural style transfer)."),
}


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command is asked for."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name in COMMANDS and name not in self.commands:
            importlib.import_module(f"{__name__}.{COMMANDS[name][0]}")  # its @cli.command() registers it
        return self.commands.get(name)

    def format_commands(self, ctx, formatter):
        with formatter.section("Commands"):
            formatter.write_dl([(name, summary) for name, (_, summary) in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             epilog="Run `gansmith COMMAND --help` for a command's options and examples. Start with: gansmith demo")
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
    from ..seeds import MAX_SEED  # the seed range of training, for every command's --seed
    return click.IntRange(0, MAX_SEED)


def show_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings reach a CLI user as one plain line, not a source location."""
    click.echo(f"warning: {message}", err=True)


def main(argv=None):
    from ..training.signals import sigterm_as_interrupt
    with sigterm_as_interrupt():  # a SIGTERM while the commands are imported ends like one later: exit 130
        return run_command(argv)


def entry():
    """The process's entry point (the `gansmith` script, `python -m gansmith`). A stopped command exits with 130
    through os._exit: when the KeyboardInterrupt had passed through code an extension runs with PyRun_* (a stop
    while PyTorch imports), CPython's exit turns any status into a death by SIGINT (-2), though gansmith caught it."""
    try:
        main()
    except SystemExit as e:
        if e.code != 130:
            raise
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)


def run_command(argv):
    warnings.showwarning = show_warning
    try:
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
