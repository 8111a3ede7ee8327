"""The ``wirecheck`` command: work with report directories after a run.

Runs themselves are started with pytest (``pytest suites/preflight ...``); this command checks,
compares, re-renders, signs and publishes what they wrote.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .exit_status import gate_blocking, gate_exit_code, gate_statuses
from .report import integrity
from .report.model import ReportError, load_compliance

EPILOG = """exit status: 0 ok, 1 verification failed / gate failed / new failures (diff --exit-code),
             2 usage or input error

examples:
  wirecheck verify-report reports/latest --key ops-signing.pub
  wirecheck diff reports/2026-11-26 reports/latest
  wirecheck allure reports/latest --previous reports/2026-11-26
  wirecheck gate reports/latest            # CI: fail on MUST only, waivers honoured
"""


def _verify(args: argparse.Namespace) -> int:
    result = integrity.verify(Path(args.dir), Path(args.key) if args.key else None)
    if result.ok:
        print(f"OK: {args.dir}: every sealed file matches (digest sha256:{result.digest})")
        for note in result.notes:
            print(f"  {note}")
        return 0
    print(f"FAILED: {args.dir}: {len(result.problems)} problem(s)")
    for p in result.problems:
        print(f"  {p}")
    return 1


def _diff(args: argparse.Namespace) -> int:
    from .report.diff import compare_paths, format_text

    d = compare_paths(Path(args.old), Path(args.new))
    if args.json:
        print(json.dumps(d.as_dict(), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(format_text(d))
    if args.exit_code and d.new_failures:
        return 1
    return 0


def _html(args: argparse.Namespace) -> int:
    from .report import write_html

    report_dir = Path(args.dir)
    compliance = load_compliance(report_dir)
    if not report_dir.is_dir():
        raise ReportError(f"{report_dir}: give the report directory, not a file")
    sealed = (report_dir / integrity.MANIFEST).is_file()
    if sealed:
        check = integrity.verify(report_dir, check_signature=False)
        others = [p for p in check.problems if not p.startswith(integrity.HTML_FILE)]
        if others:
            raise ReportError(f"{report_dir}: refusing to re-render, the report does not match its manifest: "
                              f"{others[0]}")
    path = write_html(report_dir, compliance)
    print(f"wrote {path}")
    if sealed:
        before = json.loads((report_dir / integrity.MANIFEST).read_text(encoding="utf-8"))
        after = integrity.build_manifest(report_dir, created=before.get("created"))
        if after["files"] != before.get("files"):
            had_sig = (report_dir / integrity.SIGNATURE).is_file()
            (report_dir / integrity.SIGNATURE).unlink(missing_ok=True)
            integrity.write_manifest(report_dir)
            print(f"updated {report_dir / integrity.MANIFEST} for the new page"
                  + ("; the old signature no longer applies: run `wirecheck sign`" if had_sig else ""))
    return 0


def _sign(args: argparse.Namespace) -> int:
    report_dir = Path(args.dir)
    if not (report_dir / integrity.MANIFEST).is_file() and (report_dir / "compliance.json").is_file() \
            and args.seal:
        integrity.write_manifest(report_dir)
    sig = integrity.sign(report_dir, Path(args.key))
    print(f"signed {report_dir / integrity.MANIFEST} with {sig['algorithm']} key {sig['key_fingerprint']}")
    return 0


def _gate(args: argparse.Namespace) -> int:
    compliance = load_compliance(Path(args.dir))
    levels = {lv.strip().lower() for lv in args.level.split(",") if lv.strip()}
    bad = gate_statuses(args.allow_errors)
    blocking = gate_blocking(compliance["requirements"], levels, args.allow_errors)
    waived = sum(1 for r in compliance["requirements"] if r.get("status") == "waived")
    if not blocking:
        print(f"gate passed: no {'/'.join(sorted(levels)).upper()} requirement failed"
              + (f" ({waived} waived)" if waived else ""))
        return 0
    print(f"gate failed: {len(blocking)} {'/'.join(sorted(levels)).upper()} requirement(s) not met")
    for r in blocking:
        hosts = sorted({str(x.get("target")) for x in r.get("results") or [] if x.get("status") in bad})
        print(f"  {r.get('id')} [{r.get('status')}] on {', '.join(hosts) or '-'}: {r.get('title')}")
    return gate_exit_code(blocking)


def _allure(args: argparse.Namespace) -> int:
    from .report import allure

    report_dir = Path(args.dir)
    results = Path(args.results) if args.results else report_dir / allure.RESULTS_SUBDIR
    output = Path(args.output) if args.output else report_dir / allure.REPORT_SUBDIR
    if results.is_dir() and (report_dir / "compliance.json").is_file() \
            and not (results / "environment.properties").exists():
        allure.write_environment(results, load_compliance(report_dir))
    out = allure.generate(results, output, previous=Path(args.previous) if args.previous else None,
                          single_file=args.single_file)
    print(f"wrote {out / 'index.html'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wirecheck", description="Check, compare, render and sign wirecheck report directories "
        "(a directory holding compliance.json, compliance.html, integrity.json and evidence/).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("verify-report", help="check a report's digests and signature; name what changed",
                       description="Recompute the SHA-256 of compliance.json, compliance.html and every "
                       "evidence file, compare with integrity.json (also its per-requirement digests), and check "
                       "integrity.sig if present. Fails on any file added, removed or changed, and on symbolic "
                       "links (never followed), naming each.")
    p.add_argument("dir", metavar="DIR", help="report directory")
    p.add_argument("--key", metavar="KEY", help="public (or private) key the signature must be made with; "
                   "without it a valid signature by any key is reported with its fingerprint")
    p.set_defaults(func=_verify)

    p = sub.add_parser("diff", help="new failures, fixed requirements and changed evidence between two runs",
                       description="Compare two runs (report directories or compliance.json files).")
    p.add_argument("old", metavar="OLD", help="earlier report directory or compliance.json")
    p.add_argument("new", metavar="NEW", help="later report directory or compliance.json")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.add_argument("--exit-code", action="store_true", help="exit 1 when NEW has new failures")
    p.set_defaults(func=_diff)

    p = sub.add_parser("html", help="re-render compliance.html from compliance.json",
                       description="Re-render DIR/compliance.html from DIR/compliance.json (e.g. after an "
                       "upgrade). A sealed report is re-sealed only if nothing else changed; a signature "
                       "is then dropped and must be renewed with `wirecheck sign`.")
    p.add_argument("dir", metavar="DIR", help="report directory")
    p.set_defaults(func=_html)

    p = sub.add_parser("sign", help="sign a report's integrity.json with your private key",
                       description="Sign DIR/integrity.json (after checking it still matches the files) and "
                       "write DIR/integrity.sig. Keys: Ed25519, ECDSA or RSA in PEM, OpenSSH or DER format; "
                       f"an encrypted key's passphrase is read from ${integrity.PASSPHRASE_ENV}.")
    p.add_argument("dir", metavar="DIR", help="report directory")
    p.add_argument("--key", metavar="KEY", required=True, help="private key file")
    p.add_argument("--seal", action="store_true", help="write integrity.json first if the report has none")
    p.set_defaults(func=_sign)

    p = sub.add_parser("gate", help="exit 1 if a MUST requirement failed (after waivers); for CI",
                       description="Decide a CI gate from DIR/compliance.json: fail when a requirement of the "
                       "given level(s) has status fail or warn, or error (could not measure) unless "
                       "--allow-errors. Waived and attested requirements do not fail the gate.")
    p.add_argument("dir", metavar="DIR", help="report directory or compliance.json")
    p.add_argument("--level", default="must", metavar="LEVELS", help="comma-separated levels that gate "
                   "(default: must)")
    p.add_argument("--allow-errors", action="store_true", help="do not fail on 'could not measure'")
    p.set_defaults(func=_gate)

    p = sub.add_parser("allure", help="render the Allure HTML report (offline), carrying trend history",
                       description="Run `allure generate` on DIR/allure-results into DIR/allure-report. "
                       "Needs the Allure 2 command line (npm package allure-commandline, and Java) on PATH "
                       "or in $WIRECHECK_ALLURE.")
    p.add_argument("dir", metavar="DIR", help="report directory (holding allure-results/)")
    p.add_argument("--previous", metavar="PREV", help="previous report directory: its Allure history is "
                   "carried over so the report shows trends")
    p.add_argument("--results", metavar="PATH", help="Allure results directory (default DIR/allure-results)")
    p.add_argument("--output", metavar="PATH", help="output directory (default DIR/allure-report)")
    p.add_argument("--single-file", action="store_true", help="one index.html that opens from disk without a "
                   "web server (for CI artifacts; no history folder is written)")
    p.set_defaults(func=_allure)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ReportError as exc:
        print(f"wirecheck: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wirecheck: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
