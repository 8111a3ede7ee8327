"""Demo deploy node: the artifact the playbook downloads exists (wiab-demo › 7. Wire Artifact Download)."""

from __future__ import annotations

import re
import shlex

from wirecheck import cannot_measure, expect, fail, not_evaluated, record, requirement

HEAD = ("import sys,urllib.request as u\n"
        "try:\n"
        " r=u.urlopen(u.Request(sys.argv[1],method='HEAD'),timeout=float(sys.argv[2]))\n"
        " print(r.status, r.headers.get('Content-Length') or '-')\n"
        "except u.HTTPError as e:\n"
        " print(e.code, '-')\n"
        "except Exception as e:\n"
        " print('error', type(e).__name__, e)\n")


@requirement("DEMO-ARTIFACT-URL")
def test_artifact_exists(target, site, spec):
    artifact_hash = target.vars.get("artifact_hash") or site.vars.get("artifact_hash")
    if not artifact_hash:
        not_evaluated("which artifact the playbook downloads is not known", option="the inventory variable artifact_hash")
    if not re.fullmatch(r"[0-9A-Za-z._-]+", str(artifact_hash)):
        fail(f"artifact_hash {artifact_hash!r} is not a plain identifier", observed=str(artifact_hash),
             expected="a commit hash", method="inventory")
    url = f"{str(spec.url_base).rstrip('/')}/wire-server-deploy-static-demo-{artifact_hash}.tgz"
    timeout = float(spec.timeout_s)
    res = target.run(f"python3 -c {shlex.quote(HEAD)} {shlex.quote(url)} {timeout}", timeout=timeout + 15)
    words = res.stdout.strip().split(" ", 1)
    if res.rc != 0 or not re.fullmatch(r"\d{3}|error", words[0]):   # the HEAD script always says one
        cannot_measure(f"the HTTP HEAD did not run on {target.name} (exit {res.rc}): "
                       f"{(res.stderr.strip().splitlines() or [repr(res.stdout.strip()[:80])])[-1]}")
    status = words[0] if words and words[0] else f"exit {res.rc}: {res.stderr.strip()[-200:]}"
    length = words[1].strip() if len(words) > 1 and words[0].isdigit() else None
    size = int(length) if length and length.isdigit() else None
    record(url=url, http_status=status, content_length=size,
           needed_bandwidth_mbit_s=round(size * 8 / float(spec.download_budget_s) / 1e6, 2) if size else None,
           note=f"the playbook waits {spec.download_budget_s} s for the download")
    expect(status, f"HTTP HEAD {url}", method=f"HTTP HEAD from the node, {timeout:g} s").equals("200")
