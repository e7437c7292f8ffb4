"""The drift report as one self-contained HTML page: tables and inline SVG plots, no scripts, no files.

``render_html`` turns the JSON document that ``monitor.record_check`` writes
(and the model's recent drift history) into a page that opens offline in any
browser. Every value from the data is HTML-escaped. This module must not
compute statistics or touch the store.
"""

from __future__ import annotations

import html
import time
from typing import Any

_REF, _CUR = "#4c78a8", "#f58518"
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1100px}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
.badge{display:inline-block;padding:.2rem .6rem;border-radius:.3rem;color:#fff;font-weight:600}
.alert{background:#c0392b}.ok{background:#27ae60}.insufficient_data{background:#7f8c8d}.drift{background:#c0392b}
table{border-collapse:collapse;font-size:.9rem}td,th{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:1rem}.card{border:1px solid #ddd;border-radius:.4rem;padding:.5rem}
.legend span{margin-right:1rem}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return _e(value)


def bars_svg(labels: list[str], reference: list[float], current: list[float], width: int = 320,
             height: int = 150) -> str:
    """Side-by-side bars of two histograms (shares of rows) as an inline SVG element."""
    if not labels:
        return '<svg width="10" height="10"></svg>'
    top = max([*reference, *current, 1e-9])
    n = len(labels)
    slot = (width - 20) / n
    bar = max(slot / 2 - 1, 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 30}" role="img">']
    for i, label in enumerate(labels):
        x = 10 + i * slot
        for j, (values, color) in enumerate(((reference, _REF), (current, _CUR))):
            v = values[i] if i < len(values) else 0.0
            h = (v / top) * height
            parts.append(f'<rect x="{x + j * bar:.1f}" y="{height - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                         f'fill="{color}"><title>{_e(label)}: {v:.3f}</title></rect>')
        if n <= 12:
            parts.append(f'<text x="{x + slot / 2:.1f}" y="{height + 12}" font-size="8" text-anchor="middle">'
                         f'{_e(label[:10])}</text>')
    parts.append(f'<line x1="10" y1="{height}" x2="{width - 10}" y2="{height}" stroke="#999"/></svg>')
    return "".join(parts)


def line_svg(points: list[tuple[float, float]], threshold: float | None, width: int = 640, height: int = 160) -> str:
    """A line of (time, value) points with a dashed threshold, as an inline SVG element."""
    if not points:
        return "<p>no history yet</p>"
    xs = [p[0] for p in points]
    top = max([p[1] for p in points] + [threshold or 0.0, 1e-9]) * 1.1
    span = (max(xs) - min(xs)) or 1.0

    def at(x: float, y: float) -> tuple[float, float]:
        return 30 + (x - min(xs)) / span * (width - 40), height - y / top * (height - 10)

    coords = [at(x, y) for x, y in points]
    path = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(coords))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 10}" role="img">',
             f'<path d="{path}" fill="none" stroke="{_CUR}" stroke-width="2"/>']
    for (x, y), (_, v) in zip(coords, points):
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{_CUR}"><title>{v:.3f}</title></circle>')
    if threshold is not None:
        _, ty = at(min(xs), threshold)
        parts.append(f'<line x1="30" y1="{ty:.1f}" x2="{width - 10}" y2="{ty:.1f}" stroke="#c0392b" '
                     f'stroke-dasharray="4"/><text x="32" y="{ty - 3:.1f}" font-size="9">threshold {threshold}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(doc: dict[str, Any], history: list[dict[str, Any]]) -> str:
    """The whole report page for one drift check."""
    status = doc["status"]
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(doc["at"]))
    t = doc.get("thresholds") or {}
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>drift: {_e(doc['model'])}</title>",
           f"<style>{_STYLE}</style></head><body>",
           f"<h1>Drift report: {_e(doc['model'])} v{_e(doc.get('version') or '?')} "
           f"<span class='badge {_e(status)}'>{_e(status)}</span></h1>",
           f"<p>{_e(when)} · source: {_e(doc['source'])} · {doc['rows_current']} rows compared with "
           f"{doc['rows_reference']} reference rows</p>"]
    if doc.get("reasons"):
        out.append("<ul>" + "".join(f"<li>{_e(r)}</li>" for r in doc["reasons"]) + "</ul>")
    out.append(f"<p>Thresholds: PSI ≥ {_e(t.get('psi'))}, p-value &lt; {_e(t.get('p_value'))} / columns, "
               f"missing ratio moved ≥ {_e(t.get('missing'))}, metric drop ≥ {_e(t.get('performance_drop'))}, "
               f"at least {_e(t.get('min_rows'))} values per column.</p>")
    perf = doc.get("performance")
    if perf:
        out.append(f"<h2>Performance</h2><p>{_e(perf.get('metric'))}: reference {_fmt(perf.get('reference'), 4)}, "
                   f"current {_fmt(perf.get('current'), 4)} on {_e(perf.get('rows', '?'))} labelled rows"
                   + (f"; {_e(perf['note'])}" if perf.get("note") else "") + "</p>")
    out.append("<h2>Features</h2><table><tr><th>column</th><th>kind</th><th>status</th><th>PSI</th>"
               "<th>test</th><th>statistic</th><th>p-value</th><th>missing ref → cur</th><th>detail</th></tr>")
    columns = list(doc["features"]) + ([doc["prediction"]] if doc.get("prediction") else [])
    for f in columns:
        out.append(f"<tr><td>{_e(f['name'])}</td><td>{_e(f['kind'])}</td>"
                   f"<td><span class='badge {_e(f['status'])}'>{_e(f['status'])}</span></td>"
                   f"<td>{_fmt(f.get('psi'))}</td><td>{_e(f.get('test') or '–')}</td><td>{_fmt(f.get('statistic'))}</td>"
                   f"<td>{_fmt(f.get('p_value'))}</td><td>{_fmt(f.get('missing_reference'))} → "
                   f"{_fmt(f.get('missing_current'))}</td><td>{_e(f.get('detail') or '')}</td></tr>")
    out.append("</table><h2>Distributions</h2>"
               f"<p class='legend'><span style='color:{_REF}'>■ reference</span>"
               f"<span style='color:{_CUR}'>■ current</span></p><div class='grid'>")
    for f in columns:
        if f.get("bin_labels"):
            out.append(f"<div class='card'><b>{_e(f['name'])}</b> (PSI {_fmt(f.get('psi'))})<br>"
                       + bars_svg(f["bin_labels"], f["reference_hist"], f["current_hist"]) + "</div>")
    out.append("</div><h2>History</h2>")
    points = []
    for h in history:
        psis = [v for v in (h.get("summary") or {}).get("psi", {}).values() if isinstance(v, (int, float))]
        if psis:
            points.append((float(h["at"]), max(psis)))
    out.append("<p>Largest feature PSI of each check of this model.</p>" + line_svg(points, t.get("psi")))
    out.append("</body></html>")
    return "\n".join(out)
