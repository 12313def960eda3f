"""The report's charts: a run's metrics records -> matplotlib figures -> PNG data URIs.

Figures are built with matplotlib's object API on the Agg canvas (no pyplot, no display, no global
backend switch), so the report can be refreshed from inside a training process.
"""
from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass, field

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

G_COLOR, D_COLOR = "#2563eb", "#ea580c"
EXTRA_COLORS = ("#16a34a", "#9333ea", "#0891b2", "#be123c")
SEVERITY_COLORS = {"info": "#94a3b8", "warning": "#f59e0b", "error": "#dc2626", "critical": "#dc2626"}
FIGSIZE, DPI = (6.4, 3.3), 110


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def number(value) -> float | None:
    """A plottable number (non-finite values become NaN, a gap in the line), or None for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else math.nan


@dataclass
class Series:
    label: str
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    color: str | None = None
    err: list[float] | None = None  # half-width of a shaded band around y
    dashed: bool = False

    @classmethod
    def of(cls, records: list[dict], key: str, label: str, color: str | None = None,
           err_key: str | None = None, dashed: bool = False) -> "Series":
        """Records' (kimg, record[key]) where both are numbers; with err_key, a band of record[err_key]."""
        s = cls(label, color=color, err=[] if err_key else None, dashed=dashed)
        for r in records:
            x, y = number(r.get("kimg")), number(r.get(key))
            if x is None or y is None:
                continue
            s.x.append(x)
            s.y.append(y)
            if err_key:
                e = number(r.get(err_key))
                s.err.append(0.0 if e is None or math.isnan(e) else e)
        return s


def event_marks(records: list[dict]) -> list[tuple[float, str]]:
    """(kimg, severity) of every event reported in the records."""
    marks = []
    for r in records:
        kimg = number(r.get("kimg"))
        events = r.get("events")
        if kimg is None or not isinstance(events, list):
            continue
        marks += [(kimg, str(e.get("severity", "info"))) for e in events if isinstance(e, dict)]
    return marks


def line_chart(title: str, ylabel: str, series: list[Series], marks=(), logy: bool = False) -> str | None:
    """A PNG data URI of the series against kimg, with vertical lines at the marks; None if nothing to draw."""
    series = [s for s in series if s.x]
    if not series:
        return None
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    for s in series:
        ax.plot(s.x, s.y, label=s.label, color=s.color, linewidth=1.6, linestyle="--" if s.dashed else "-",
                marker="o" if len(s.x) < 12 else None, markersize=3.5)
        if s.err:
            lo = [y - e for y, e in zip(s.y, s.err)]
            hi = [y + e for y, e in zip(s.y, s.err)]
            ax.fill_between(s.x, lo, hi, color=ax.lines[-1].get_color(), alpha=0.18, linewidth=0)
    mark_events(ax, marks)
    if logy and spans_decades(series):
        ax.set_yscale("log")
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:.4g}" if f"{value:.0e}"[0] in "25" else ""))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.4g}"))  # plain numbers, no offset
    ax.set_title(title, fontsize=11, loc="left", fontweight="bold")
    ax.set_xlabel("kimg (thousands of real images shown)", fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(True, color="#e5e7eb", linewidth=0.8)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=8, frameon=False, loc="best")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white")
    return data_uri(buf.getvalue())


def mark_events(ax, marks) -> None:
    """A dashed vertical line at each event's kimg, coloured by severity, one legend entry per severity."""
    labelled = set()
    for kimg, severity in marks:
        label = None if severity in labelled else f"event ({severity})"
        labelled.add(severity)
        ax.axvline(kimg, color=SEVERITY_COLORS.get(severity, SEVERITY_COLORS["info"]), linewidth=1,
                   linestyle="--", alpha=0.8, label=label, zorder=0)


def spans_decades(series: list[Series]) -> bool:
    """True when all values are positive and the largest is more than 10 times the smallest."""
    ys = [y for s in series for y in s.y if not math.isnan(y)]
    return bool(ys) and min(ys) > 0 and max(ys) > 10 * min(ys)


def balance_series(records: list[dict]) -> list[Series]:
    """One series per counter of the balance policy's `balance` dicts (e.g. d_skipped, d_extra)."""
    keys = sorted({k for r in records if isinstance(r.get("balance"), dict) for k in r["balance"]})
    flat = [{"kimg": r.get("kimg"), **r["balance"]} for r in records if isinstance(r.get("balance"), dict)]
    return [Series.of(flat, k, k.replace("_", " "), EXTRA_COLORS[i % len(EXTRA_COLORS)]) for i, k in enumerate(keys)]


def drawn(charts: list[tuple]) -> list[tuple[str, str]]:
    """(title, data URI) of each (title, ylabel, series, options) chart that has something to draw."""
    drawn = [(title, line_chart(title, ylabel, series, **options)) for title, ylabel, series, options in charts]
    return [(title, uri) for title, uri in drawn if uri]


def training_charts(records: list[dict]) -> list[tuple[str, str]]:
    """The training-dynamics charts the records have data for, in reading order."""
    marks = event_marks(records)
    return drawn([
        ("Losses", "loss", [Series.of(records, "loss_g", "G", G_COLOR),
                            Series.of(records, "loss_d", "D", D_COLOR)], {"marks": marks}),
        ("Discriminator outputs", "mean D(x) (probability)",
         [Series.of(records, "d_real", "D(real)", EXTRA_COLORS[0]),
          Series.of(records, "d_fake", "D(fake)", EXTRA_COLORS[3]),
          Series.of(records, "d_acc", "D accuracy", "#64748b", dashed=True)], {}),
        ("Gradient norms", "gradient norm", [Series.of(records, "g_grad", "G", G_COLOR),
                                             Series.of(records, "d_grad", "D", D_COLOR)], {"logy": True}),
        ("Sample diversity", "mean distance between samples",
         [Series.of(records, "div_fake", "generated", G_COLOR),
          Series.of(records, "div_real", "real", "#64748b", dashed=True)], {"marks": marks}),
        ("Learning rates", "learning rate", [Series.of(records, "lr_g", "G", G_COLOR),
                                             Series.of(records, "lr_d", "D", D_COLOR, dashed=True)],
         {"logy": True}),
        ("Balance-policy interventions", "D updates per logging interval", balance_series(records),
         {"marks": marks}),
        ("Speed", "images / second", [Series.of(records, "img_per_s", "training", EXTRA_COLORS[2])], {}),
    ])


def quality_charts(records: list[dict]) -> list[tuple[str, str]]:
    """FID, KID and precision/recall over training, when the run evaluated them."""
    return drawn([
        ("FID (lower is better)", "FID", [Series.of(records, "fid", "FID", G_COLOR)], {}),
        ("KID (lower is better)", "KID", [Series.of(records, "kid", "KID ± std", D_COLOR, err_key="kid_std")], {}),
        ("Precision and recall", "fraction", [Series.of(records, "precision", "precision", EXTRA_COLORS[0]),
                                              Series.of(records, "recall", "recall", EXTRA_COLORS[1])], {}),
    ])
