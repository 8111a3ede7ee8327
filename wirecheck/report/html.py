"""``compliance.html``: one self-contained page an auditor can open, filter and print.

``render_html(compliance)`` is a pure function of the compliance dict: no clock, no file, no
network.  The page has no external resource: CSS, JavaScript and the SVG chart are inline, and a
Content-Security-Policy with hashes of exactly those inline blocks forbids everything else, so a
value that slipped through escaping still could not run or load anything.  Every value from the
report is HTML-escaped; links are kept only for http(s) URLs.
"""

from __future__ import annotations

import base64
import hashlib
import json
from html import escape
from typing import Any

from .model import (
    ATTESTED,
    ERROR,
    FAIL,
    LABELS,
    NOT_APPLICABLE,
    NOT_EVALUATED,
    NOT_IMPLEMENTED,
    PASS,
    SEVERITY,
    STATUSES,
    WAIVED,
    WARN,
    hosts_of,
    summarize,
    summarize_results,
)

COLOURS = {PASS: "#2e7d32", FAIL: "#c62828", WARN: "#ef8f00", ERROR: "#6a1b9a", WAIVED: "#00838f",
           ATTESTED: "#3949ab", NOT_EVALUATED: "#78909c", NOT_APPLICABLE: "#b0bec5", NOT_IMPLEMENTED: "#455a64"}
SHORT = {PASS: "PASS", FAIL: "FAIL", WARN: "WARN", ERROR: "ERROR", WAIVED: "WAIVED", ATTESTED: "ATTESTED",
         NOT_EVALUATED: "N/E", NOT_APPLICABLE: "N/A", NOT_IMPLEMENTED: "N/I"}
LEVELS = ("must", "should", "info")

CSS = """
:root{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;font-size:14px;color:#1b1f23}
body{margin:0 auto;padding:16px 24px;max-width:1600px}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.25em;border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse}th,td{border:1px solid #d0d7de;padding:3px 6px;vertical-align:top;text-align:left}
th{background:#f3f5f7}.meta td:first-child{font-weight:600;white-space:nowrap}
.summary{display:flex;gap:32px;flex-wrap:wrap;align-items:flex-start}
.counts td.n{text-align:right;font-variant-numeric:tabular-nums}
.sw{display:inline-block;width:.9em;height:.9em;border-radius:2px;margin-right:.4em;vertical-align:-1px}
""" + "".join(f".st-{s}{{background:{c};color:#fff}}.sw-{s}{{background:{c}}}" for s, c in COLOURS.items()) + """
.st-not_applicable{color:#263238}
.matrix-wrap{overflow-x:auto}#matrix{font-size:12px}#matrix td.cell{text-align:center;padding:0;min-width:3.4em;font-size:10.5px}
#matrix td.req{min-width:22em;max-width:40em}#matrix .area{color:#57606a;font-size:11px}
.flag-x{display:inline-block;margin-left:2px;padding:0 3px;background:#fff;color:#b71c1c;border-radius:50%;font-weight:800}
#matrix td.cell a{display:block;padding:3px 4px;color:inherit;text-decoration:none;font-weight:600}
#matrix td.cell a:hover,#matrix td.cell a:focus{outline:2px solid #000;outline-offset:-2px}
#matrix td.none{background:repeating-linear-gradient(45deg,#fafafa,#fafafa 4px,#f0f0f0 4px,#f0f0f0 8px)}
#matrix th.host{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap;max-height:12em}
#matrix td.req .id{font-weight:700;font-family:ui-monospace,Menlo,Consolas,monospace;white-space:nowrap}
.badge{display:inline-block;padding:0 .45em;border-radius:3px;font-size:.85em;font-weight:600;white-space:nowrap}
.filters{display:flex;gap:16px;flex-wrap:wrap;align-items:center;margin:.6em 0;padding:.5em;background:#f6f8fa;border:1px solid #d0d7de}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f8fa;padding:6px;margin:.3em 0;font-size:12px}
details{border:1px solid #d0d7de;margin:4px 0;padding:2px 8px}details[open]{background:#fcfcfd}
details summary{cursor:pointer}details:target{outline:3px solid #0969da}
dl.ev{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:.4em 0}dl.ev dt{font-weight:600}dl.ev dd{margin:0}
.flag{color:#b71c1c;font-weight:700}.muted{color:#57606a}
dialog{max-width:min(900px,92vw);max-height:85vh;overflow:auto;border:1px solid #888;border-radius:6px}
dialog::backdrop{background:rgba(0,0,0,.35)}
@page{size:A4 landscape;margin:12mm}
@media print{
 :root{font-size:10px}body{max-width:none;padding:0}.filters,dialog,.noprint{display:none!important}
 *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
 tr,details,.summary{break-inside:avoid}thead{display:table-header-group}
 h2{break-after:avoid}#evidence article{break-inside:auto}a{color:inherit;text-decoration:none}
 #matrix tbody tr[hidden]{display:table-row}
}
"""

JS = """
(function(){
'use strict';
var q=new URLSearchParams(location.search);
var sel={status:document.getElementById('f-status'),area:document.getElementById('f-area'),level:document.getElementById('f-level')};
function apply(){
  var s=sel.status.value,a=sel.area.value,l=sel.level.value,n=0;
  document.querySelectorAll('#matrix tbody tr').forEach(function(tr){
    var st=tr.dataset.statuses.split(' ');
    var ok=(!s||(s.charAt(0)==='!'?tr.dataset.status!==s.slice(1):st.indexOf(s)>=0))&&(!a||tr.dataset.area===a)&&(!l||tr.dataset.level===l);
    tr.hidden=!ok;if(ok){n++;}
  });
  document.getElementById('shown').textContent=String(n);
}
Object.keys(sel).forEach(function(k){
  var v=q.get(k);
  if(v!==null&&Array.prototype.some.call(sel[k].options,function(o){return o.value===v;})){sel[k].value=v;}
  sel[k].addEventListener('change',apply);
});
document.getElementById('f-reset').addEventListener('click',function(){Object.keys(sel).forEach(function(k){sel[k].value='';});apply();});
apply();
var dlg=document.getElementById('dlg'),body=document.getElementById('dlg-body');
function openEvidence(id){
  var d=document.getElementById(id);
  if(!d||d.tagName!=='DETAILS'||typeof dlg.showModal!=='function'){return false;}
  var parts=[];
  Array.prototype.forEach.call(d.children,function(c){parts.push(c.cloneNode(true));});
  var sum=parts.shift();var h=document.createElement('h3');h.textContent=sum.textContent;
  body.replaceChildren.apply(body,[h].concat(parts));
  dlg.dataset.open=id;dlg.showModal();return true;
}
document.querySelectorAll('#matrix a.cell-link').forEach(function(a){
  a.addEventListener('click',function(e){if(openEvidence(a.getAttribute('href').slice(1))){e.preventDefault();}});
});
document.getElementById('dlg-close').addEventListener('click',function(){dlg.close();});
if(q.get('open')){openEvidence(q.get('open'));}
window.addEventListener('beforeprint',function(){
  document.querySelectorAll('details').forEach(function(d){d.open=true;});
  if(dlg.open){dlg.close();}
});
document.body.dataset.ready='1';
})();
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _safe_url(url: Any) -> str | None:
    if isinstance(url, str) and url.lower().startswith(("https://", "http://")):
        return url
    return None


def _link(url: Any, text: Any) -> str:
    safe = _safe_url(url)
    if safe is None:
        return _e(text)
    return f'<a href="{_e(safe)}" rel="noopener noreferrer">{_e(text)}</a>'


def _value(value: Any) -> str:
    if value is None:
        return '<span class="muted">—</span>'
    if isinstance(value, str | int | float | bool):
        return _e(value)
    return f"<pre>{_e(json.dumps(value, indent=2, ensure_ascii=False, default=str))}</pre>"


def _badge(status: str) -> str:
    return f'<span class="badge st-{_e(status)}">{_e(LABELS.get(status, status))}</span>'


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _chart(counts: dict[str, int], title: str) -> str:
    """Horizontal bar chart plus a 100 % stacked bar, as inline SVG."""
    rows = [s for s in STATUSES if counts.get(s)]
    total = sum(counts.get(s, 0) for s in STATUSES) or 1
    peak = max([counts.get(s, 0) for s in rows] or [1])
    bar_w, label_w, row_h = 260, 120, 20
    height = 34 + row_h * max(len(rows), 1) + 6
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{label_w + bar_w + 50}" '
           f'height="{height}" viewBox="0 0 {label_w + bar_w + 50} {height}" id="chart" '
           f'font-family="sans-serif" font-size="12"><title>{_e(title)}</title>']
    x = 0.0
    for s in rows:  # stacked bar of all requirements
        w = (label_w + bar_w) * counts[s] / total
        out.append(f'<rect x="{x:.2f}" y="2" width="{w:.2f}" height="16" fill="{COLOURS.get(s, "#999")}">'
                   f'<title>{_e(LABELS.get(s, s))}: {counts[s]}</title></rect>')
        x += w
    for i, s in enumerate(rows):
        y = 30 + i * row_h
        w = max(bar_w * counts[s] / peak, 1)
        out.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{_e(LABELS.get(s, s))}</text>'
                   f'<rect class="bar" data-status="{_e(s)}" x="{label_w}" y="{y}" width="{w:.2f}" height="16" '
                   f'fill="{COLOURS.get(s, "#999")}"/>'
                   f'<text x="{label_w + w + 4:.2f}" y="{y + 13}">{counts[s]}</text>')
    out.append("</svg>")
    return "".join(out)


def _result_body(req: dict[str, Any], res: dict[str, Any], host: str) -> str:
    rows = [("Status", _badge(res.get("status", ERROR)) + (
        f' <span class="muted">(check said {_e(LABELS.get(res["original_status"], res["original_status"]))})</span>'
        if res.get("original_status") else ""))]
    for key, label in (("observed", "Observed"), ("expected", "Expected"), ("method", "Method"),
                       ("message", "Message"), ("check", "Check")):
        if res.get(key) not in (None, ""):
            rows.append((label, _value(res.get(key))))
    remediation = res.get("remediation") or req.get("remediation")
    rows.append(("Remediation", _value(remediation)))
    w = res.get("waiver")
    if w:
        rows.append(("Waiver", f'{_e(w.get("id"))}: {_e(w.get("justification"))} — approved by '
                               f'{_e(w.get("approver"))}, expires {_e(w.get("expires"))}'
                               + (f' ({_e(w.get("reference"))})' if w.get("reference") else "")))
    w = res.get("waiver_expired")
    if w:
        rows.append(("Waiver", f'<span class="flag">EXPIRED</span> {_e(w.get("id"))} expired '
                               f'{_e(w.get("expires"))} (approver {_e(w.get("approver"))}); no longer applies'))
    a = res.get("attestation")
    if a:
        rows.append(("Attestation", f'{_e(a.get("statement"))} — attested by {_e(a.get("attested_by"))} on '
                                    f'{_e(a.get("date"))}' + (f' ({_e(a.get("reference"))})' if a.get("reference")
                                                              else "")))
    ev = res.get("evidence")
    if ev:
        rows.append(("Evidence", _value(ev)))
    files = ev.get("files") if isinstance(ev, dict) else None
    if isinstance(files, list) and files:
        # relative links to the sealed evidence files beside the page; nothing is loaded from them
        links = [f'<a href="{_e(f)}">{_e(f)}</a>' if _is_evidence_path(f) else _e(f) for f in files]
        rows.append(("Evidence files", "<br>".join(links)))
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    return f'<p class="muted">{_e(req.get("id"))} on {_e(host)}</p><dl class="ev">{dl}</dl>'


def render_html(compliance: dict[str, Any]) -> str:
    """The whole report page as a string (deterministic for a given compliance dict)."""
    reqs: list[dict[str, Any]] = list(compliance.get("requirements") or [])
    hosts = hosts_of(compliance)
    req_counts = summarize(reqs)
    res_counts = summarize_results(reqs)
    profile, phase = compliance.get("profile", "?"), compliance.get("phase", "?")
    title = f"wirecheck compliance report — {profile} {phase}"

    # -------- header / metadata
    targets = compliance.get("targets") or []
    target_rows = "".join(
        f"<tr><td>{_e(t.get('name'))}</td><td>{_e(t.get('address'))}</td>"
        f"<td>{_e(', '.join(map(str, t.get('roles') or [])))}</td></tr>" for t in targets)
    meta = [("Profile", profile), ("Phase", phase), ("Started", compliance.get("started")),
            ("Finished", compliance.get("finished")), ("wirecheck", compliance.get("wirecheck_version")),
            ("Catalog", compliance.get("catalog_version")), ("Waivers evaluated on", compliance.get("report_date")),
            ("Schema", compliance.get("schema"))]
    meta_html = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in meta if v not in (None, ""))

    # -------- summary
    count_rows = "".join(
        f'<tr class="count" data-status="{_e(s)}"><td><span class="sw sw-{_e(s)}"></span>{_e(LABELS[s])}</td>'
        f'<td class="n req-n">{req_counts.get(s, 0)}</td><td class="n res-n">{res_counts.get(s, 0)}</td></tr>'
        for s in STATUSES)
    total_req, total_res = sum(req_counts.values()), sum(res_counts.values())
    summary = (f'<div class="summary"><table class="counts" id="counts"><thead><tr><th>Status</th>'
               f'<th>Requirements</th><th>Results (requirement × host)</th></tr></thead><tbody>{count_rows}'
               f'<tr><th>Total</th><th class="n" id="total-req">{total_req}</th><th class="n">{total_res}</th></tr>'
               f'</tbody></table>{_chart(req_counts, "Requirements by status")}{_exceptions(compliance)}</div>')

    # -------- filters
    def options(values: list[str], labels: dict[str, str] | None = None) -> str:
        return '<option value="">all</option>' + "".join(
            f'<option value="{_e(v)}">{_e((labels or {}).get(v, v))}</option>' for v in values)

    present_status = [s for s in STATUSES if req_counts.get(s) or res_counts.get(s)]
    areas = sorted({str(r.get("area") or "") for r in reqs} - {""})
    levels = [lv for lv in LEVELS if any(r.get("level") == lv for r in reqs)] + sorted(
        {str(r.get("level")) for r in reqs if r.get("level") not in LEVELS and r.get("level")})
    status_opts = options(present_status, LABELS) + '<option value="!not_applicable">all but not applicable</option>'
    filters = (f'<div class="filters noprint"><label>Status <select id="f-status">{status_opts}'
               f'</select></label><label>Area <select id="f-area">{options(areas)}</select></label>'
               f'<label>Level <select id="f-level">{options(levels)}</select></label>'
               f'<button type="button" id="f-reset">Reset</button>'
               f'<span>showing <b id="shown">{len(reqs)}</b> of {len(reqs)} requirements</span></div>')

    # -------- matrix and evidence
    head = "".join(f'<th class="host" scope="col">{_e(h)}</th>' for h in hosts)
    body_rows, articles = [], []
    for i, req in enumerate(reqs):
        rid = str(req.get("id", f"#{i}"))
        status = str(req.get("status", NOT_IMPLEMENTED))
        by_host: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for j, res in enumerate(req.get("results") or []):
            by_host.setdefault(str(res.get("target") or "site"), []).append((j, res))
        cells = []
        statuses = {status}
        details = []
        for h in hosts:
            found = by_host.get(h)
            if not found:
                cells.append('<td class="cell none" title="not in scope for this host"></td>')
                continue
            # one cell per host; the worst result shows, all of them are in the evidence list
            j, res = max(found, key=lambda jr: SEVERITY.get(str(jr[1].get("status")), 0))
            st = str(res.get("status", ERROR))
            statuses.update(str(r.get("status", ERROR)) for _, r in found)
            more = f" +{len(found) - 1}" if len(found) > 1 else ""
            if any(r.get("waiver_expired") for _, r in found):
                more += '<span class="flag-x" title="a waiver for this cell has expired">!</span>'
            cells.append(f'<td class="cell st-{_e(st)}" data-host="{_e(h)}" data-status="{_e(st)}">'
                         f'<a class="cell-link" href="#ev-{i}-{j}" title="{_e(rid)} on {_e(h)}: '
                         f'{_e(LABELS.get(st, st))}">{_e(SHORT.get(st, st))}{more}</a></td>')
        for j, res in enumerate(req.get("results") or []):
            h = str(res.get("target") or "site")
            st = str(res.get("status", ERROR))
            details.append(f'<details id="ev-{i}-{j}"><summary>{_e(rid)} on {_e(h)}: {_badge(st)} '
                           f'{_e(res.get("message") or "")}</summary>{_result_body(req, res, h)}</details>')
        src = req.get("source") or {}
        if not isinstance(src, dict):
            src = {"text": src}
        url = req.get("url") or src.get("url")
        doc = " › ".join(str(x) for x in (src.get("doc"), src.get("section")) if x) or src.get("text") or url or ""
        body_rows.append(
            f'<tr id="row-{_e(rid)}" data-id="{_e(rid)}" data-status="{_e(status)}" '
            f'data-statuses="{_e(" ".join(sorted(statuses)))}" data-area="{_e(req.get("area") or "")}" '
            f'data-level="{_e(req.get("level") or "")}"><td class="req"><a class="id" href="#req-{_e(rid)}">{_e(rid)}'
            f'</a> {_e(req.get("title"))}<div class="area">{_e(req.get("area"))}</div></td>'
            f'<td>{_e(req.get("level"))}</td><td>{_badge(status)}</td>{"".join(cells)}</tr>')
        reason = ""
        if not details:
            why = req.get("reason") or req.get("message")
            reason = f'<p><i>No result: {_e(LABELS.get(status, status))}{": " + _e(why) if why else ""}.</i></p>'
        articles.append(
            f'<article id="req-{_e(rid)}"><h3>{_e(rid)} — {_e(req.get("title"))} {_badge(status)}</h3>'
            f'<p>Level <b>{_e(req.get("level"))}</b> · area {_e(req.get("area"))} · source: {_link(url, doc)}</p>'
            f'{reason}{"".join(details)}</article>')
    matrix = (f'<div class="matrix-wrap"><table id="matrix"><thead><tr><th scope="col">Requirement</th>'
              f'<th scope="col">Level</th><th scope="col">Status</th>{head}</tr></thead>'
              f'<tbody>{"".join(body_rows)}</tbody></table></div>')

    # -------- not checked, waivers, attestations
    gaps = [r for r in reqs if r.get("status") in (NOT_IMPLEMENTED, NOT_EVALUATED, ERROR)]
    gap_rows = "".join(
        f'<tr data-status="{_e(r.get("status"))}"><td><a href="#req-{_e(r.get("id"))}">{_e(r.get("id"))}</a></td>'
        f'<td>{_e(r.get("title"))}</td><td>{_badge(str(r.get("status")))}</td><td>{_e(_why(r))}</td></tr>'
        for r in gaps)
    gaps_html = (f'<table id="not-checked"><thead><tr><th>Requirement</th><th>Title</th><th>Status</th><th>Why</th>'
                 f'</tr></thead><tbody>{gap_rows}</tbody></table>' if gaps else "<p>Every requirement was evaluated.</p>")

    waivers = compliance.get("waivers") or []
    w_rows = "".join(
        f'<tr data-state="{_e(w.get("state"))}"><td>{_e(w.get("id"))}</td><td>{_e(w.get("requirement"))}</td>'
        f'<td>{_e(", ".join(map(str, w.get("hosts") or [])))}</td><td>{_e(w.get("justification"))}</td>'
        f'<td>{_e(w.get("approver"))}</td><td>{_e(w.get("expires"))}</td>'
        f'<td>{_state(w.get("state"))}</td><td>{_e(", ".join(w.get("applied_to") or w.get("would_apply_to") or []))}'
        f'</td></tr>' for w in waivers)
    waivers_html = (f'<table id="waivers"><thead><tr><th>ID</th><th>Requirement</th><th>Hosts</th><th>Justification</th>'
                    f'<th>Approver</th><th>Expires</th><th>State</th><th>Hosts matched</th></tr></thead>'
                    f'<tbody>{w_rows}</tbody></table>' if waivers else "<p>No waivers.</p>")
    atts = compliance.get("attestations") or []
    a_rows = "".join(
        f'<tr data-state="{_e(a.get("state"))}"><td>{_e(a.get("id"))}</td><td>{_e(a.get("requirement"))}</td>'
        f'<td>{_e(a.get("statement"))}</td><td>{_e(a.get("attested_by"))}</td><td>{_e(a.get("date"))}</td>'
        f'<td>{_e(a.get("expires") or "")}</td><td>{_state(a.get("state"))}</td></tr>' for a in atts)
    atts_html = (f'<table id="attestations"><thead><tr><th>ID</th><th>Requirement</th><th>Statement</th>'
                 f'<th>Attested by</th><th>Date</th><th>Expires</th><th>State</th></tr></thead><tbody>{a_rows}'
                 f'</tbody></table>' if atts else "<p>No attestations.</p>")

    csp = (f"default-src 'none'; style-src {_csp_hash(CSS)}; script-src {_csp_hash(JS)}; img-src data:; "
           "base-uri 'none'; form-action 'none'")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="wirecheck">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f'<header><h1>{_e(title)}</h1><table class="meta" id="meta">{meta_html}</table>'
        f'<h2>Targets</h2><table id="targets"><thead><tr><th>Name</th><th>Address</th><th>Roles</th></tr></thead>'
        f'<tbody>{target_rows}</tbody></table></header>'
        f'<section id="summary-section"><h2>Summary</h2>{summary}</section>'
        f'<section id="matrix-section"><h2>Requirements × hosts</h2>{filters}{matrix}'
        '<p class="muted noprint">Click a cell for its evidence and remediation. Hatched: the requirement does not apply '
        "to that host's roles.</p></section>"
        f'<section id="gaps-section"><h2>Not checked ({len(gaps)})</h2>'
        '<p class="muted">Requirements without a machine verdict: no check implemented, an input missing, or the '
        f"measurement failed.</p>{gaps_html}</section>"
        f'<section id="waivers-section"><h2>Waivers ({len(waivers)})</h2>{waivers_html}</section>'
        f'<section id="attestations-section"><h2>Attestations ({len(atts)})</h2>{atts_html}</section>'
        f'<section id="evidence"><h2>Evidence</h2>{"".join(articles)}</section>'
        '<footer class="muted"><p>Integrity: the SHA-256 of compliance.json and every evidence file is in '
        "integrity.json beside this page; check it with <code>wirecheck verify-report DIR</code>.</p></footer>"
        '<dialog id="dlg"><button type="button" id="dlg-close" class="noprint">Close</button><div id="dlg-body"></div>'
        f"</dialog><script>{JS}</script></body></html>\n")


def _why(req: dict[str, Any]) -> str:
    msgs = [str(r.get("message")) for r in req.get("results") or []
            if r.get("message") and r.get("status") in (NOT_IMPLEMENTED, NOT_EVALUATED, ERROR)]
    if msgs:
        return "; ".join(dict.fromkeys(msgs))
    if req.get("reason") or req.get("message"):
        return str(req.get("reason") or req.get("message"))
    return {NOT_IMPLEMENTED: "no check implemented yet", NOT_EVALUATED: "input missing",
            ERROR: "could not measure"}.get(str(req.get("status")), "")


def _state(state: Any) -> str:
    s = str(state or "")
    cls = ' class="flag"' if s in ("expired", "future", "unused", "superseded") else ""
    return f"<span{cls}>{_e(s)}</span>"


def _exceptions(compliance: dict[str, Any]) -> str:
    """One-paragraph account of waivers and attestations, with expired ones flagged."""
    def tally(items: list[dict[str, Any]], states: tuple[str, ...]) -> str:
        parts = []
        for st in states:
            n = sum(1 for i in items if i.get("state") == st)
            if n:
                cls = ' class="flag"' if st in ("expired", "future", "unused", "superseded") else ""
                parts.append(f'<span{cls} data-state="{st}">{n} {st}</span>')
        return ", ".join(parts) or "none"

    waivers = compliance.get("waivers") or []
    atts = compliance.get("attestations") or []
    return (f'<div id="exceptions"><p><b>Waivers:</b> {tally(waivers, ("active", "expired", "unused"))}</p>'
            f'<p><b>Attestations:</b> {tally(atts, ("applied", "superseded", "expired", "future", "unused"))}</p>'
            '<p class="muted">Waived and attested requirements are counted separately from passed ones.</p></div>')


def _is_evidence_path(path: Any) -> bool:
    p = str(path)
    return p.startswith("evidence/") and ".." not in p.split("/") and ":" not in p and "\\" not in p
