"""compliance.html in real headless Chromium: matrix, counts, filters, evidence dialog, print."""

from __future__ import annotations

import html
import re

from wirecheck.report import attestations, waivers, write_all

from .helpers import TODAY, with_xss


def write(tmp_path, compliance, waivers_file=None, attestations_file=None):
    d = tmp_path / "report"
    write_all(d, compliance, today=TODAY,
              waivers=waivers.load(waivers_file) if waivers_file else None,
              attestations=attestations.load(attestations_file) if attestations_file else None)
    return d / "compliance.html"


def cells(dom: str) -> dict[tuple[str, str], str]:
    out = {}
    for m in re.finditer(r'<tr id="row-([^"]+)"(.*?)</tr>', dom, flags=re.S):
        for host, status in re.findall(r'<td class="cell st-[a-z_]+" data-host="([^"]+)" data-status="([a-z_]+)"',
                                       m.group(2)):
            out[(m.group(1), host)] = status
    return out


def test_renders_matrix_and_counts(tmp_path, chromium, prod, waivers_file, attestations_file):
    page = write(tmp_path, prod, waivers_file, attestations_file)
    dom = chromium.dump_dom(page.as_uri())
    assert 'data-ready="1"' in dom  # the page's script ran (CSP let exactly it run)
    grid = cells(dom)
    assert grid[("TIME-NTP-SYNC", "minio2")] == "fail" and grid[("TIME-NTP-SYNC", "minio1")] == "pass"
    assert grid[("HOST-SUDO", "es1")] == "error"
    assert grid[("PROD-NET-AVOID-10NET", "kube3")] == "waived"
    assert grid[("PROD-PHYS-SERVERS", "site")] == "attested"
    assert grid[("IMP-SWAP-OFF", "cassandra1")] == "warn"
    assert len(grid) == 14 + 3 + 14 + 14 + 14 + 1 + 1 + 1
    counts = dict(re.findall(r'<tr class="count" data-status="([a-z_]+)">.*?<td class="n req-n">(\d+)</td>', dom))
    assert counts["fail"] == "2" and counts["waived"] == "1" and counts["attested"] == "2"
    assert counts["error"] == "1" and counts["pass"] == "0"
    assert re.search(r'<b id="shown">9</b> of 9 requirements', dom)
    assert dom.count('<rect class="bar"') == 6  # one bar per status present: fail warn error waived attested n/a
    shot = chromium.screenshot(page.as_uri(), tmp_path / "prod.png", width=1400, height=1600)
    assert shot.stat().st_size > 20_000  # a real picture (looked at by hand when this test was written)


def test_filters_from_url(tmp_path, chromium, demo_new):
    page = write(tmp_path, demo_new)
    dom = chromium.dump_dom(page.as_uri() + "?status=fail")
    visible = re.findall(r'<tr id="row-([^"]+)"[^>]*data-level="[a-z]*">', dom)
    hidden = re.findall(r'<tr id="row-([^"]+)"[^>]*data-level="[a-z]*" hidden="">', dom)
    assert visible == ["DEMO-SYS-DISK", "DEMO-NET-IP-FORWARD"]
    assert len(hidden) == 15
    assert '<b id="shown">2</b>' in dom
    dom = chromium.dump_dom(page.as_uri() + "?level=should&area=DNS")
    visible = re.findall(r'<tr id="row-([^"]+)"[^>]*data-level="[a-z]*">', dom)
    assert visible == ["DNS-SPF"]
    dom = chromium.dump_dom(page.as_uri() + "?status=!not_applicable")
    hidden = re.findall(r'<tr id="row-([^"]+)"[^>]*data-level="[a-z]*" hidden="">', dom)
    assert hidden == ["TLS-BYO-CERT", "PROD-PHYS-SERVERS", "K8S-WORKERS"]


def test_cell_opens_evidence_and_remediation(tmp_path, chromium, demo_new, waivers_file):
    page = write(tmp_path, demo_new, waivers_file)
    dom = chromium.dump_dom(page.as_uri() + "?open=ev-8-0")  # IMP-INOTIFY on wiab-1
    dialog = re.search(r'<dialog id="dlg"[^>]*open=""[^>]*>(.*?)</dialog>', dom, flags=re.S)
    assert dialog, "evidence dialog did not open"
    body = dialog.group(1)
    assert "IMP-INOTIFY on wiab-1" in body
    remediation = next(r for r in demo_new["requirements"] if r["id"] == "IMP-INOTIFY")["remediation"]
    assert f"<dt>Remediation</dt><dd>{html.escape(remediation, quote=False)}</dd>" in body
    assert "EXPIRED" in body and "W-2026-009" in body


def test_script_injection_does_not_run(tmp_path, chromium, demo_new):
    page = write(tmp_path, with_xss(demo_new))
    dom = chromium.dump_dom(page.as_uri() + "?open=ev-0-0")
    assert 'data-ready="1"' in dom
    assert "data-pwned=" not in dom  # as an attribute; the escaped text shows data-pwned&#39; etc.
    assert "&lt;script&gt;document.body.setAttribute('data-pwned','title')&lt;/script&gt;" in dom


def test_print_layout_makes_a_pdf(tmp_path, chromium, demo_new):
    page = write(tmp_path, demo_new)
    pdf = chromium.print_pdf(page.as_uri(), tmp_path / "compliance.pdf")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    pages = len(re.findall(rb"/Type\s*/Page[^s]", data))
    assert pages >= 2
    # A4 landscape from the print stylesheet: 842 x 595 points
    assert re.search(rb"/MediaBox\s*\[\s*0 0 841\.9\d* 594\.9\d*\s*\]", data)
