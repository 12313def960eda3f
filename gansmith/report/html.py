"""The report page: plain f-strings, and every string that comes from the run goes through `esc`.

The page is self-contained: images are data URIs, styles are inline, and the one script only marks
`<body data-images-ok="N" data-images-broken="M">` once the page has loaded, so a headless browser can
tell that every image decoded.
"""
from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field

SEVERITIES = ("critical", "error", "warning", "info")
PLURALS = {"error": "errors", "warning": "warnings"}


@dataclass
class Picture:
    uri: str
    label: str
    width: int
    height: int


@dataclass
class Finding:
    kimg: float | None
    kind: str
    severity: str
    message: str
    evidence: object
    remedy: str
    applied: bool = False  # the remedy was applied by --auto-fix


@dataclass
class Report:
    """Everything the page shows; absent parts are None or empty and get a hint instead."""
    name: str
    details: list[str]
    generated: str
    version: str
    summary: list[tuple[str, str]] = field(default_factory=list)
    latest: Picture | None = None
    timeline: list[Picture] = field(default_factory=list)
    charts: list[tuple[str, str]] = field(default_factory=list)
    quality: list[tuple[str, str]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    findings_dropped: int = 0
    too_short: str | None = None  # why the doctor cannot judge the run yet
    evaluation: dict | None = None
    evaluation_rows: list[tuple[str, str, str]] = field(default_factory=list)  # (name, value, meaning)
    nearest: Picture | None = None
    model_pictures: list[Picture] = field(default_factory=list)   # e.g. StyleGAN's truncation and style mixing
    config: dict | None = None
    notes: list[str] = field(default_factory=list)


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def fmt(value) -> str:
    """A config or metric value as short text."""
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return "—" if value is None else str(value)


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{body}</section>'


def hint(text: str) -> str:
    return f'<p class="hint">{esc(text)}</p>'


def kv_table(values: dict, caption: str = "") -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(fmt(v))}</td></tr>" for k, v in values.items())
    head = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f'<table class="kv">{head}{rows}</table>'


def picture(p: Picture, css_class: str = "") -> str:
    pixel = " pixel" if p.width < 400 else ""
    return (f'<figure class="{css_class}"><img class="{pixel.strip()}" src="{esc(p.uri)}" alt="{esc(p.label)}" '
            f'width="{p.width}" height="{p.height}"><figcaption>{esc(p.label)}</figcaption></figure>')


def chart_grid(charts: list[tuple[str, str]]) -> str:
    figures = "".join(f'<figure class="chart"><img src="{esc(uri)}" alt="{esc(title)}"></figure>'
                      for title, uri in charts)
    return f'<div class="charts">{figures}</div>'


def summary_cards(items: list[tuple[str, str]]) -> str:
    cards = "".join(f'<div class="card"><div class="label">{esc(k)}</div><div class="value">{esc(v)}</div></div>'
                    for k, v in items)
    return f'<div class="cards">{cards}</div>'


def samples_section(latest: Picture | None, timeline: list[Picture], model_pictures: list[Picture]) -> str:
    if latest is None:
        return section("samples", "Samples", hint("No sample grids yet: training writes one every --sample-every kimg."))
    pictures = "".join(picture(g) for g in timeline)
    body = picture(latest, "latest") + (
        f'<h3>Over training (the same latent vectors each time)</h3><div class="timeline">{pictures}</div>'
        if len(timeline) > 1 else "") + "".join(f"<h3>{esc(p.label)}</h3>{picture(p)}" for p in model_pictures)
    return section("samples", "Samples", body)


def evidence_text(evidence) -> str:
    if isinstance(evidence, dict):
        return "".join(f"<div><span class=\"key\">{esc(k)}</span> {esc(fmt(v))}</div>" for k, v in evidence.items())
    return esc(fmt(evidence)) if evidence not in (None, "", [], {}) else ""


def findings_section(findings: list[Finding], dropped: int, too_short: str | None) -> str:
    if not findings:
        text = (f"No findings yet, and the run is {too_short}." if too_short else
                "No findings: the run doctor and the balance policy reported nothing.")
        return section("findings", "Findings", hint(text))
    rows = "".join(finding_row(f) for f in findings)
    more = hint(f"{dropped} earlier findings are not shown.") if dropped else ""
    table = ('<table class="findings"><thead><tr><th>kimg</th><th>severity</th><th>finding</th><th>evidence</th>'
             f'<th>what to do</th></tr></thead><tbody>{rows}</tbody></table>')
    return section("findings", "Findings", f'<p>{esc(tally(findings))}. Dashed lines on the loss chart mark when they were '
                                             f'reported.</p>{more}{table}')


def tally(findings: list[Finding]) -> str:
    """'2 warnings, 1 info', the most severe first."""
    counts = {s: sum(f.severity == s for f in findings) for s in {f.severity for f in findings}}
    return ", ".join(f"{n} {PLURALS.get(s, s) if n > 1 else s}"
                     for s, n in sorted(counts.items(), key=lambda c: severity_rank(c[0])))


def finding_row(f: Finding) -> str:
    applied = ' <span class="badge applied">applied by --auto-fix</span>' if f.applied else ""
    return (f'<tr><td class="num">{esc(fmt(f.kimg))}</td>'
            f'<td><span class="badge {severity_class(f.severity)}">{esc(f.severity)}</span></td>'
            f'<td><div class="kind">{esc(f.kind)}</div>{esc(f.message)}</td>'
            f'<td class="evidence">{evidence_text(f.evidence)}</td><td>{esc(f.remedy)}{applied}</td></tr>')


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def severity_class(severity: str) -> str:
    return f"sev-{severity}" if severity in SEVERITIES else "sev-info"


def curves_section(charts: list[tuple[str, str]]) -> str:
    body = chart_grid(charts) if charts else hint("No metrics yet: training writes them every --log-every kimg.")
    return section("curves", "Training curves", body)


def metrics_table(rows: list[tuple[str, str, str]]) -> str:
    body = "".join(f'<tr><th>{esc(name)}</th><td>{esc(value)}</td><td class="meaning">{esc(meaning)}</td></tr>'
                   for name, value, meaning in rows)
    return f'<table class="kv metrics">{body}</table>'


def quality_section(charts: list[tuple[str, str]], evaluation: dict | None, rows: list[tuple[str, str, str]]) -> str:
    parts = [chart_grid(charts)] if charts else [hint("No FID/KID over training: this run did not evaluate while training.")]
    if evaluation:
        details = {k: v for k, v in evaluation.items() if k != "metrics"}
        parts.append("<h3>Last <code>gansmith eval</code> (eval.json)</h3>"
                     + (metrics_table(rows) if rows else "") + kv_table(details))
    else:
        parts.append(hint("No eval.json: measure the run with `gansmith eval RUN`."))
    return section("quality", "Quality", "".join(parts))


def memorization_section(nearest: Picture | None) -> str:
    if nearest is None:
        return section("memorization", "Memorization",
                       hint("Not computed: `gansmith eval RUN --metrics nn` writes the nearest-neighbour gallery."))
    text = ("Each row: a generated sample, then its nearest training images by Inception features, then by pixels. "
            "Rows are ordered most copy-like first; a row whose neighbours look identical to the sample is a copy.")
    return section("memorization", "Memorization", f"<p>{esc(text)}</p>{picture(nearest, 'gallery')}")


def config_section(config: dict | None) -> str:
    if config is None:
        return section("config", "Configuration", hint("config.json is missing or unreadable."))
    tables = []
    for key, title in (("config", "Training options"), ("data", "Data"), ("versions", "Versions")):
        if isinstance(config.get(key), dict):
            tables.append(kv_table(config[key], title))
    rest = {k: v for k, v in config.items() if k not in ("config", "data", "versions")}
    if rest:
        tables.append(kv_table(rest, "Other"))
    return section("config", "Configuration", f'<div class="tables">{"".join(tables)}</div>')


def render(r: Report) -> str:
    notes = "".join(hint(n) for n in r.notes)
    nav = "".join(f'<a href="#{a}">{t}</a>' for a, t in (
        ("samples", "Samples"), ("findings", "Findings"), ("curves", "Curves"), ("quality", "Quality"),
        ("memorization", "Memorization"), ("config", "Configuration")))
    body = "".join([
        samples_section(r.latest, r.timeline, r.model_pictures), findings_section(r.findings, r.findings_dropped, r.too_short),
        curves_section(r.charts), quality_section(r.quality, r.evaluation, r.evaluation_rows), memorization_section(r.nearest),
        config_section(r.config),
    ])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(r.name)} · gansmith report</title>
<style>{CSS}</style></head>
<body>
<header><div class="title"><h1>{esc(r.name)}</h1><div class="details">{" · ".join(esc(d) for d in r.details)}</div></div>
<nav>{nav}</nav></header>
<main>{summary_cards(r.summary)}{notes}{body}</main>
<footer>gansmith {esc(r.version)} · written {esc(r.generated)} · while training runs, reload to see progress</footer>
<script>{SCRIPT}</script>
</body></html>
"""


SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (img) { return !(img.complete && img.naturalWidth > 0); });
  document.body.setAttribute("data-images-ok", String(images.length - broken.length));
  document.body.setAttribute("data-images-broken", String(broken.length));
});
"""

CSS = """
:root { --ink: #111827; --muted: #6b7280; --line: #e5e7eb; --bg: #f8fafc; --accent: #2563eb; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--ink); background: var(--bg); }
header { display: flex; flex-wrap: wrap; align-items: center; justify-content: space-between; gap: 8px 24px;
         padding: 16px 32px; background: #fff; border-bottom: 1px solid var(--line); position: sticky; top: 0; z-index: 1; }
h1 { margin: 0; font-size: 22px; }
.details { color: var(--muted); font-size: 13px; word-break: break-all; }
nav a { color: var(--accent); text-decoration: none; margin-left: 16px; font-size: 14px; }
main { max-width: 1240px; margin: 0 auto; padding: 20px 32px 40px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 18px 22px; margin: 18px 0; }
h2 { margin: 0 0 12px; font-size: 18px; }
h3 { margin: 20px 0 10px; font-size: 15px; color: #374151; }
.hint { color: var(--muted); margin: 6px 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); gap: 10px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 10px 14px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 16px; font-weight: 600; font-variant-numeric: tabular-nums; word-break: break-word; }
figure { margin: 0; }
figcaption { color: var(--muted); font-size: 13px; text-align: center; margin-top: 4px; }
img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
img.pixel { image-rendering: pixelated; }
figure.latest img { width: 480px; }
figure.gallery img { width: 100%; max-width: 900px; }
.timeline { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 14px; }
.timeline img { width: 100%; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 14px; }
.chart img { width: 100%; border: 1px solid var(--line); border-radius: 6px; }
table { border-collapse: collapse; font-size: 14px; }
.kv { margin: 0 0 12px; width: 100%; table-layout: fixed; }
.kv caption { text-align: left; font-weight: 600; padding: 4px 0; }
.kv th { width: 40%; text-align: left; font-weight: 500; color: #374151; padding: 3px 12px 3px 0; vertical-align: top;
          overflow-wrap: anywhere; }
.kv td { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 13px; overflow-wrap: anywhere; padding: 3px 0; }
.kv tr + tr { border-top: 1px solid #f3f4f6; }
.metrics th { width: 28%; } .metrics td.meaning { font-family: inherit; color: var(--muted); padding-left: 12px; }
.tables { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: 8px 28px; align-items: start; }
.findings { width: 100%; }
.findings th { text-align: left; color: var(--muted); font-weight: 500; border-bottom: 1px solid var(--line); padding: 6px 8px; }
.findings td { vertical-align: top; border-bottom: 1px solid #f3f4f6; padding: 8px; }
.findings .num { font-variant-numeric: tabular-nums; white-space: nowrap; }
.findings .kind { font-size: 12px; color: var(--muted); }
.evidence { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; min-width: 200px; }
.evidence div { white-space: nowrap; }
.evidence .key { color: var(--muted); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600; }
.sev-info { background: #e0f2fe; color: #075985; }
.sev-warning { background: #fef3c7; color: #92400e; }
.sev-error, .sev-critical { background: #fee2e2; color: #991b1b; }
.applied { background: #dcfce7; color: #166534; margin-left: 4px; }
code { background: #f3f4f6; padding: 1px 5px; border-radius: 4px; font-size: 13px; }
footer { color: var(--muted); font-size: 12px; text-align: center; padding: 0 0 24px; }
"""
