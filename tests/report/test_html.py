"""compliance.html as a pure function: content, escaping, no external resources."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from wirecheck.report import apply_exceptions, attestations, render_html, waivers

from .helpers import TODAY, with_xss


class Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)


def parse(page: str) -> Collector:
    c = Collector()
    c.feed(page)
    return c


def test_pure_and_deterministic(prod):
    before = repr(prod)
    assert render_html(prod) == render_html(prod)
    assert repr(prod) == before  # input untouched


def test_self_contained(prod, waivers_file, attestations_file):
    page = render_html(apply_exceptions(prod, waivers=waivers.load(waivers_file),
                                        attestations=attestations.load(attestations_file), today=TODAY))
    doc = parse(page)
    for tag, attrs in doc.tags:
        assert "src" not in attrs or tag == "img" and attrs["src"].startswith("data:"), (tag, attrs)
        assert tag not in ("link", "iframe", "object", "embed", "base"), tag
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)  # no inline handlers (CSP would block them)
            if name == "href" and value:
                assert value.startswith(("#", "https://", "http://", "evidence/")), value
    csp = next(a["content"] for t, a in doc.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp and "script-src 'sha256-" in csp
    assert len(doc.scripts) == 1


def test_lists_every_requirement_and_status(demo_new, waivers_file):
    c = apply_exceptions(demo_new, waivers=waivers.load(waivers_file), today=TODAY)
    page = render_html(c)
    rows = re.findall(r'<tr id="row-([A-Z0-9-]+)" data-id="[^"]+" data-status="([a-z_]+)"', page)
    assert {rid: st for rid, st in rows} == {r["id"]: r["status"] for r in c["requirements"]}
    assert len(rows) == 17
    # not implemented and not evaluated are listed with the reason, not hidden
    gaps = page[page.index('id="not-checked"'):page.index("</table>", page.index('id="not-checked"'))]
    for rid in ("NET-PORT-UDP-RANGE", "TLS-ACME-PREREQ", "DNS-DEMO-RECORDS", "DNS-SPF", "DEMO-NET-FIREWALL"):
        assert f">{rid}</a>" in gaps
    assert "wirecheck has no check for this requirement yet" in gaps
    assert "no domain given (supply it with --domain)" in gaps
    counts = dict(re.findall(r'<tr class="count" data-status="([a-z_]+)">.*?<td class="n req-n">(\d+)</td>', page))
    assert counts == {k: str(v) for k, v in c["summary"].items()}
    # the expired waiver is flagged in its cell and in the register
    assert 'title="a waiver for this cell has expired"' in page
    assert '<span class="flag">expired</span>' in page


def test_everything_is_escaped(demo_new):
    page = render_html(with_xss(demo_new))
    assert "<script>document" not in page
    assert "<img src=x" not in page and "<svg onload" not in page
    assert 'href="javascript:' not in page
    assert "&lt;script&gt;document.body.setAttribute(&#x27;data-pwned&#x27;,&#x27;title&#x27;)" in page
    doc = parse(page)
    assert len(doc.scripts) == 1 and all(not n.startswith("on") for _, a in doc.tags for n in a)
