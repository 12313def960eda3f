"""`gansmith report`: the run as one HTML page."""
from __future__ import annotations

from pathlib import Path

import click

from . import cli


@cli.command(epilog="""\b
Examples:
  gansmith report runs/shoes          # then open runs/shoes/report.html in a browser
Training refreshes the report by itself (at most once a minute) unless --no-report.""")
@click.argument("run", type=click.Path(path_type=Path))
def report(run):
    """Write RUN/report.html: one self-contained page with the run's samples, curves, findings and config."""
    from ..report import write_report
    click.echo(f"wrote {write_report(run)}")
