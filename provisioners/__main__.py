"""`python -m provisioners <name> [options] [-- pytest args]`: preflight gate → install → acceptance gate.

With --dry-run only the preflight runs (for real, against the inventory's hosts); the install and
acceptance commands are printed. Exit status tells which phase stopped the run:
    0  everything passed
    2  usage / input error (nothing ran)
    3  preflight: a MUST requirement failed (nothing was installed)
    4  install: a playbook or command failed (acceptance not run)
    5  acceptance: the installed stack did not pass the acceptance gate
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from provisioners.gate import GateResult, run_gate_until

EXIT_OK, EXIT_USAGE, EXIT_PREFLIGHT, EXIT_INSTALL, EXIT_ACCEPTANCE = 0, 2, 3, 4, 5
PHASE_EXIT = {"preflight": EXIT_PREFLIGHT, "install": EXIT_INSTALL, "acceptance": EXIT_ACCEPTANCE}


def _parse_extra_vars(values: list[str]) -> dict:
    out: dict = {}
    for raw in values:
        raw = raw.strip()
        if raw.startswith("@"):
            import yaml

            path = Path(raw[1:])
            if not path.is_file():
                raise SystemExit(f"provision: extra-vars file {path} not found")
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        elif raw.startswith("{"):
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"provision: -e {raw!r} is not valid JSON: {exc}") from exc
        else:
            data = {}
            for pair in raw.split():
                key, sep, value = pair.partition("=")
                if not sep or not key:
                    raise SystemExit(f"provision: -e expects key=value, @file or JSON, got {pair!r}")
                data[key] = value
        if not isinstance(data, dict):
            raise SystemExit(f"provision: -e {raw!r} does not give a mapping")
        out.update(data)
    return out


def build_parser(names: list[str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m provisioners",
        description="Preflight, install Wire with wire-server-deploy, then run the acceptance gate.",
        epilog="Arguments after `--` go to both pytest gate runs. Exit: 0 ok, 2 usage, 3 preflight, "
               "4 install, 5 acceptance.")
    p.add_argument("provisioner", help=f"provisioner name ({', '.join(names)})")
    p.add_argument("--ansible-inventory", "-i", type=Path, help="Ansible inventory of the installation")
    src = p.add_argument_group("wire-server-deploy (exactly one)")
    src.add_argument("--wire-server-deploy", type=Path, help="existing checkout")
    src.add_argument("--wsd-git", metavar="URL", help="git URL to clone")
    src.add_argument("--wsd-ref", metavar="REF", help="branch, tag or commit for --wsd-git")
    src.add_argument("--wsd-zip", metavar="URL", help="release zip (http(s):// or file path)")
    src.add_argument("--wsd-sha256", metavar="HEX", help="checksum of --wsd-zip")
    a = p.add_argument_group("Ansible pass-through")
    a.add_argument("--tags", action="append", default=[], help="only run plays/tasks with these tags")
    a.add_argument("--skip-tags", action="append", default=[], help="skip plays/tasks with these tags")
    a.add_argument("-e", "--extra-vars", action="append", default=[], help="key=value, @file.yml or JSON")
    a.add_argument("-v", "--verbose", action="count", default=0, help="Ansible verbosity")
    p.add_argument("--kubeconfig", type=Path, help="kubeconfig for Helm steps and Kubernetes checks")
    p.add_argument("--chart-repo", help="Helm repo name for charts (production; default: charts/ in the checkout)")
    p.add_argument("--report-dir", type=Path, help="where preflight/, install/, acceptance/ and provision.json go")
    p.add_argument("--force", action="store_true", help="install even if preflight fails (recorded in the report)")
    p.add_argument("--dry-run", action="store_true",
                   help="run the preflight against the inventory's hosts and print the exact install and acceptance "
                        "commands without running them; exit 0 when the preflight passes, 3 when it does not")
    p.add_argument("--skip-preflight", action="store_true", help="do not run the preflight gate (recorded)")
    p.add_argument("--skip-acceptance", action="store_true", help="do not run the acceptance gate (recorded)")
    p.add_argument("--acceptance-timeout", type=float, default=900.0,
                   help="seconds to wait for a converging stack before judging (default 900)")
    p.add_argument("--acceptance-interval", type=float, default=30.0,
                   help="seconds between acceptance attempts (default 30)")
    p.add_argument("--preflight-args", default="", metavar="ARGS",
                   help="extra pytest arguments for the preflight run only (one string, shell-split)")
    p.add_argument("--acceptance-args", default="", metavar="ARGS",
                   help="extra pytest arguments for the acceptance run only (one string, shell-split)")
    p.add_argument("--suites", type=Path, default=Path(__file__).resolve().parent.parent / "suites",
                   help="directory holding preflight/ and acceptance/")
    return p


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    import provisioners
    from provisioners import AnsibleOptions, ProvisionContext, ProvisionError
    from provisioners.wsd import WsdSource

    argv = list(sys.argv[1:] if argv is None else argv)
    pytest_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, pytest_args = argv[:cut], argv[cut + 1:]
    args = build_parser(sorted(provisioners.available())).parse_args(argv)

    try:
        prov = provisioners.get(args.provisioner)
    except ProvisionError as exc:
        _say(f"provision: {exc}")
        return EXIT_USAGE
    except Exception as exc:  # a broken plugin: say which, no traceback
        _say(f"provision: could not load provisioner {args.provisioner!r}: {type(exc).__name__}: {exc}")
        return EXIT_USAGE

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    report_dir = (args.report_dir or Path("reports") / f"provision-{prov.name}-{stamp}").resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    inventory = args.ansible_inventory.resolve() if args.ansible_inventory else None
    source = WsdSource(path=args.wire_server_deploy, git_url=args.wsd_git, git_ref=args.wsd_ref,
                       zip_url=args.wsd_zip, zip_sha256=args.wsd_sha256)
    record: dict = {
        "schema": "wirecheck/provision/v1", "provisioner": prov.name, "profile": prov.profile,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "report_dir": str(report_dir),
        "inventory": str(inventory) if inventory else None, "wire_server_deploy": None,
        "forced": bool(args.force), "dry_run": bool(args.dry_run), "pytest_args": pytest_args,
        "skipped_phases": [p for p, s in (("preflight", args.skip_preflight), ("acceptance", args.skip_acceptance)) if s],
        "phases": {}, "failed_phase": None, "exit_code": None,
    }

    def finish(code: int, phase: str | None, message: str) -> int:
        record["failed_phase"] = phase
        record["exit_code"] = code
        record["message"] = message
        record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        (report_dir / "provision.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
        _say(message)
        _say(f"report: {report_dir}")
        return code

    try:
        source.validate()
        if args.dry_run and not source.path:
            for cmd in source.commands(report_dir / "work"):
                print(" ".join(cmd))
            wsd = source.path or report_dir / "work" / "wire-server-deploy"
            if source.zip_url:
                print(f"# download {source.zip_url}, verify sha256 {source.zip_sha256}, unzip into {wsd}")
        else:
            _say(f"wire-server-deploy: {source.describe()}")
            wsd = source.fetch(report_dir / "work")
        record["wire_server_deploy"] = str(wsd)
        ctx = ProvisionContext(
            profile=prov.profile, wsd=Path(wsd), inventory=inventory, report_dir=report_dir,
            ansible=AnsibleOptions(tags=[t for x in args.tags for t in x.split(",") if t],
                                   skip_tags=[t for x in args.skip_tags for t in x.split(",") if t],
                                   extra_vars=_parse_extra_vars(args.extra_vars), verbosity=args.verbose),
            options={"kubeconfig": args.kubeconfig, "chart_repo": args.chart_repo},
        )
        if args.dry_run and not Path(wsd).is_dir():
            _say(f"(dry run: {wsd} is not fetched, the plan below assumes its standard layout)")
        steps = prov.plan(ctx) if Path(wsd).is_dir() else []
    except ProvisionError as exc:
        return finish(EXIT_USAGE, None, f"provision: {exc}")

    from provisioners.runner import ansible_in_use
    ansible_path, ansible_core = ansible_in_use()
    record["ansible"] = {"ansible_playbook": ansible_path, "ansible_core": ansible_core}
    _say(f"ansible: {ansible_path or 'no ansible-playbook found'}"
         + (f" (ansible-core {ansible_core})" if ansible_core else ""))

    gate_common = {"profile": prov.profile, "inventory": inventory, "suites": args.suites,
                   "pytest_args": pytest_args, "kubeconfig": args.kubeconfig,
                   "wsd": Path(wsd)}

    pre_args, acc_args = shlex.split(args.preflight_args), shlex.split(args.acceptance_args)
    if args.dry_run:
        return dry_run(args, prov, ctx, steps, gate_common, pre_args, acc_args, report_dir, record, finish)

    # 1. preflight
    if args.skip_preflight:
        _say("preflight: SKIPPED (--skip-preflight)")
    else:
        _say("== preflight ==")
        pre = run_gate_until("preflight", report_dir / "preflight", timeout=0, interval=0, say=_say,
                             phase_args=pre_args, **gate_common)
        record["phases"]["preflight"] = pre.to_dict()
        if not pre.passed:
            if not args.force:
                return finish(EXIT_PREFLIGHT, "preflight",
                              f"PROVISION FAILED in phase preflight: {pre.summary_line()}; nothing was installed "
                              "(fix the above, or use --force to install anyway)")
            record["phases"]["preflight"]["overridden_by_force"] = True
            _say(f"preflight FAILED but --force given, continuing: {pre.summary_line()}")

    # 2. install
    _say(f"== install ({prov.name}: {len(steps)} step(s)) ==")
    install = prov.install(ctx, steps, progress=_say)
    record["phases"]["install"] = {
        "status": "pass" if install.ok else "fail",
        "log": str(report_dir / "install" / "ansible.log"),
        "steps": [vars(s) for s in install.steps],
    }
    if not install.ok:
        bad = install.failed_step
        detail = ""
        if bad and bad.failed_tasks:
            t = bad.failed_tasks[0]
            detail = f" (task {t['task']!r} on {t['host']}: {t['message'][:200]})"
        return finish(EXIT_INSTALL, "install",
                      f"PROVISION FAILED in phase install: step {bad.step if bad else '?'} {bad.status if bad else ''}"
                      f"{detail}; acceptance not run; full log {report_dir / 'install' / 'ansible.log'}")

    # 3. acceptance
    if args.skip_acceptance:
        return finish(EXIT_OK, None, "PROVISION OK (acceptance SKIPPED by --skip-acceptance)")
    _say("== acceptance ==")
    acc: GateResult = run_gate_until("acceptance", report_dir / "acceptance", timeout=args.acceptance_timeout,
                                     interval=args.acceptance_interval, say=_say, phase_args=acc_args,
                                     **gate_common)
    record["phases"]["acceptance"] = acc.to_dict()
    if not acc.passed:
        return finish(EXIT_ACCEPTANCE, "acceptance", f"PROVISION FAILED in phase acceptance: {acc.summary_line()}")
    forced = " (preflight overridden by --force)" if args.force and record["phases"].get("preflight", {}).get(
        "overridden_by_force") else ""
    return finish(EXIT_OK, None, f"PROVISION OK: preflight, install and acceptance passed{forced}")


def dry_run(args, prov, ctx, steps, gate_common: dict, pre_args: list[str], acc_args: list[str], report_dir: Path,
            record: dict, finish) -> int:
    """--dry-run: the preflight runs for real, against the inventory's hosts, as before an install; the
    install and acceptance commands are printed, never run. Exit 0 when the preflight passes (or is
    skipped), 3 when it blocks -- whatever --force says, since nothing is installed either way."""
    from provisioners.gate import gate_command
    from provisioners.runner import describe_command

    pre = None
    if args.skip_preflight:
        _say("preflight: SKIPPED (--skip-preflight)")
    else:
        common = dict(gate_common)
        if not Path(common["wsd"]).is_dir():     # a git URL or zip a dry run does not fetch: nothing to judge
            common["wsd"] = None
            _say("(dry run: wire-server-deploy is not fetched, so its checkout is not judged: CTRL-WSD-CHECKOUT "
                 "is not evaluated)")
        print(gate_command("preflight", report_dir / "preflight", phase_args=pre_args, **common)[1], flush=True)
        _say("== preflight (dry run: the preflight runs; nothing after it does) ==")
        pre = run_gate_until("preflight", report_dir / "preflight", timeout=0, interval=0, say=_say,
                             phase_args=pre_args, **common)
        record["phases"]["preflight"] = pre.to_dict()
    for i, step in enumerate(steps, 1):
        print(describe_command(step, ctx, i))
    if not args.skip_acceptance:
        print(gate_command("acceptance", report_dir / "acceptance", phase_args=acc_args, **gate_common)[1])
    if pre is not None and not pre.passed:
        forced = " (--force would install anyway)" if args.force else ""
        return finish(EXIT_PREFLIGHT, "preflight",
                      f"DRY RUN: preflight FAILED: {pre.summary_line()}{forced}; the {len(steps)} install "
                      "step(s) and the acceptance run printed above were not run")
    said = "preflight passed" if pre is not None else "preflight skipped"
    return finish(EXIT_OK, None, f"DRY RUN: {said}; the {len(steps)} install step(s) and the acceptance run "
                                 f"printed above were not run ({prov.name})")


def entry() -> int:
    try:
        return main()
    except KeyboardInterrupt:
        print("provision: interrupted (Ctrl-C); see the report directory for what ran", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(entry())
