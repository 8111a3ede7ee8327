"""Kill rate per module of the last mutmut run (tox -e mutation).

Reads mutmut's result files (mutants/**/*.py.meta) and prints, per mutated module and in total:
mutants, killed (a test failed or timed out), survived (no test noticed; "no tests" counts as
survived), and the kill rate. Survivors judged equivalent (they cannot change any result) are
listed by mutant name in docs/mutation-survivors.md, each with the reason; they are shown apart
and left out of the adjusted rate. With --min PCT the exit status is 1 when the adjusted total
rate is below PCT.

    python tools/mutation_report.py [--min 90] [--survivors]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

KILLED = {1, 3, 36, 37, -24, 24, 152, 255}   # test failure, pytest internal error, timeouts, type check
SURVIVED = {0, 5, 33, 35}                   # no test noticed, no tests ran, suspicious
EQUIVALENT_LIST = Path("docs/mutation-survivors.md")


def equivalents(path: Path = EQUIVALENT_LIST) -> set[str]:
    """Mutant names listed in the survivors document: lines starting with `- ``name`` `."""
    if not path.exists():
        return set()
    return set(re.findall(r"^- `([\w.\-]+__mutmut_\d+)`", path.read_text(encoding="utf-8"), flags=re.M))


def module_of(meta: Path, root: Path) -> str:
    rel = meta.relative_to(root).as_posix()
    return rel[: -len(".meta")]


def collect(root: Path = Path("mutants")) -> dict[str, dict[str, int | str]]:
    """mutant name -> exit code, grouped by module."""
    out: dict[str, dict[str, int | str]] = {}
    for meta in sorted(root.rglob("*.py.meta")):
        data = json.loads(meta.read_text(encoding="utf-8"))
        out[module_of(meta, root)] = dict(data.get("exit_code_by_key") or {})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--min", type=float, default=None, help="fail when the adjusted total kill rate is below")
    ap.add_argument("--survivors", action="store_true", help="list the surviving mutants not judged equivalent")
    ap.add_argument("--root", default="mutants")
    args = ap.parse_args(argv)
    results = collect(Path(args.root))
    if not results:
        print("no mutmut results under", args.root, file=sys.stderr)
        return 2
    equiv = equivalents()
    totals: dict[str, int] = defaultdict(int)
    rows = []
    open_survivors: list[str] = []
    for module, codes in results.items():
        killed = sum(1 for c in codes.values() if c in KILLED)
        survived = [k for k, c in codes.items() if c in SURVIVED]
        unchecked = sum(1 for c in codes.values() if c is None)
        eq = [k for k in survived if k in equiv]
        open_survivors += sorted(k for k in survived if k not in equiv)
        checked = killed + len(survived)
        rows.append((module, checked, killed, len(survived), len(eq), unchecked))
        for key, value in (("checked", checked), ("killed", killed), ("survived", len(survived)),
                           ("equivalent", len(eq)), ("unchecked", unchecked)):
            totals[key] += value

    def rate(killed: int, checked: int, eq: int) -> str:
        return f"{100 * killed / (checked - eq):5.1f} %" if checked - eq else "    - "

    print(f"{'module':36} {'mutants':>7} {'killed':>7} {'survived':>8} {'equiv.':>6} {'kill rate':>9} "
          f"{'adjusted':>9}")
    for module, checked, killed, survived, eq, unchecked in rows:
        note = f"  ({unchecked} not run)" if unchecked else ""
        print(f"{module:36} {checked:7} {killed:7} {survived:8} {eq:6} {rate(killed, checked, 0):>9} "
              f"{rate(killed, checked, eq):>9}{note}")
    print(f"{'TOTAL':36} {totals['checked']:7} {totals['killed']:7} {totals['survived']:8} {totals['equivalent']:6} "
          f"{rate(totals['killed'], totals['checked'], 0):>9} "
          f"{rate(totals['killed'], totals['checked'], totals['equivalent']):>9}")
    if args.survivors:
        print("\nsurvivors not judged equivalent (see them with `mutmut show NAME`):")
        for name in open_survivors:
            print("  ", name)
    if args.min is not None:
        denominator = totals["checked"] - totals["equivalent"]
        adjusted = 100 * totals["killed"] / denominator if denominator else 0.0
        if adjusted < args.min:
            print(f"adjusted kill rate {adjusted:.1f} % is below {args.min:g} %", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
