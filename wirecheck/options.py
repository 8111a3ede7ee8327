"""Options and the site: wirecheck's command-line options and the Site built from them (targets,
inventory, domain, overrides, site packs), and the waiver/attestation files."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any

import pytest

from .catalog import default_catalog, load_catalog
from .coordination import inventory_from_controller
from .inventory import SshOverrides, infer_profile, inventory_kind, load_inventory, targets_from_inventory
from .site import Site, SiteError, check_domain, check_ipv4, file_secrets, parse_nameserver
from .sitepacks import load_packs
from .targets import TargetError, local_target, secrets_in, target_from_spec


def add_options(parser: pytest.Parser) -> None:
    g = parser.getgroup("wirecheck", "wirecheck: Wire installation checks")
    g.addoption("--profile", choices=None, default=None,
                help="demo or production (default: inferred from the inventory, else demo)")
    g.addoption("--phase", default=None, help="preflight or acceptance (default: from the suite path)")
    g.addoption("--domain", default=None, help="the Wire domain (default: the inventory's target_domain)")
    g.addoption("--wire-ip", default=None, help="the public IP of the Wire installation (default: inventory wire_ip)")
    g.addoption("--nameserver", action="append", default=[],
                help="DNS resolver to ask, IP or IP:port (repeatable; default: the system's)")
    g.addoption("--ca-bundle", default=None, help="CA bundle (PEM) to verify certificates against")
    g.addoption("--kubeconfig", default=None, help="kubeconfig for the Kubernetes checks")
    g.addoption("--report-dir", default="reports/latest", help="where compliance.json is written")
    g.addoption("--roles", default=None,
                help="comma-separated roles for --hosts targets (default: deploy_node in the demo profile)")
    g.addoption("--param", action="append", default=[], metavar="ID.NAME=VALUE",
                help="override a catalog threshold (recorded in the report), e.g. DEMO-SYS-CPU.min_cores=8")
    g.addoption("--connect-timeout", type=int, default=8, help="SSH connect timeout in seconds (default 8)")
    g.addoption("--command-timeout", type=float, default=20.0,
                help="time limit in seconds of a command on a target, where a check sets none of its own "
                     "(default 20); it also ends the command on the target")
    g.addoption("--wire-server-deploy", default=None,
                help="path of the wire-server-deploy checkout (for CTRL-WSD-CHECKOUT and friends)")
    g.addoption("--internet-url", action="append", default=[],
                help="URL the deploy node must reach (repeatable; default: those Wire's playbook downloads from)")
    g.addoption("--public-ip-url", default=None, metavar="URL",
                help="with wire_ip empty (demo): the URL the deploy node asks for its public address, as Wire's "
                     "verify_wire_ip.yml does (default $WIRECHECK_PUBLIC_IP_URL, else https://api.ipify.org)")
    g.addoption("--public-ip-timeout", type=float, default=10.0,
                help="seconds the deploy node may take to get its public address (default 10)")
    g.addoption("--dns-timeout", type=float, default=2.0, help="seconds per DNS query (default 2)")
    g.addoption("--dns-tries", type=int, default=2, help="tries per DNS query and resolver (default 2)")
    g.addoption("--tls-port", type=int, default=443, help="HTTPS port of the ingress (default 443)")
    g.addoption("--http-port", type=int, default=80, help="HTTP port of the ingress (default 80)")
    g.addoption("--tls-timeout", type=float, default=5.0, help="seconds per TLS handshake (default 5)")
    g.addoption("--tls-cert", default=None, help="your own certificate (PEM, with chain) for TLS-BYO-CERT")
    g.addoption("--tls-key", default=None, help="the private key of --tls-cert (PEM; never copied into reports)")
    g.addoption("--federation", action="store_true", default=False,
                help="the site federates (enables the federation requirements)")
    g.addoption("--federation-cert", default=None, help="federation client certificate (PEM) for TLS-FED-CERT")
    g.addoption("--waivers", default=None, metavar="FILE",
                help="waivers YAML: matching fails become waived until their expiry date")
    g.addoption("--attestations", default=None, metavar="FILE",
                help="operator attestations for requirements no machine can measure")
    g.addoption("--sign-key", default=None, metavar="FILE",
                help="private key that signs integrity.json (passphrase in $WIRECHECK_SIGNING_PASSPHRASE)")
    g.addoption("--report-date", default=None, metavar="YYYY-MM-DD",
                help="the day waivers and attestations are judged against (default: today)")
    g.addoption("--probe-from", default=None, metavar="ssh://user@host",
                help="send the port probes from this host instead of the machine running pytest")
    g.addoption("--port-timeout", type=float, default=1.5, help="TCP connect timeout of the port probes (default 1.5 s; each port gets 3 attempts inside it)")
    g.addoption("--kube-context", default=None, help="kubeconfig context to use")
    g.addoption("--values-dir", default=None, metavar="DIR",
                help="Helm values directory (values/<chart>/values.yaml + secrets.yaml; default: "
                     "<--wire-server-deploy>/values) for the chart-values checks")
    g.addoption("--turn-ip", action="append", default=[], metavar="IP",
                help="public IP of a TURN server (coturn/restund): the TURN checks probe it and brig must "
                     "advertise it (repeatable; default: restund_public_ip, else ansible_host)")
    g.addoption("--helm-release", action="append", default=[], metavar="NAME[|ALT][@NAMESPACE]",
                help="an extra Helm release that must be deployed (repeatable)")
    g.addoption("--sft-concurrent-users", type=int, default=None, metavar="N",
                help="expected concurrent conference users (CALL-SFT-PLACEMENT sizes SFT nodes by it)")
    g.addoption("--max-run-time", type=float, default=None, metavar="SECONDS",
                help="stop the run cleanly after this many seconds; checks not run are reported as not_evaluated")
    g.addoption("--catalog", default=None, help="an alternative catalog file (for testing the framework)")
    g.addoption("--checks", action="append", default=[], metavar="DIR",
                help="a site pack: DIR/catalog.yaml adds the site's own requirements, DIR/test_*.py their checks "
                     "(repeatable; installed packs come from the wirecheck.checks entry-point group)")
    g.addoption("--smtp-relay", default=None, metavar="HOST[:PORT]",
                help="the mail server the installation sends through (IMP-SMTP-EGRESS connects to it from each host)")
    g.addoption("--aws-region", default=None, help="region of the real AWS services (SQS/SNS) the site uses (NET-AWS-REACH)")
    g.addoption("--allow-reboot", action="store_true", default=False,
                help="allow IMP-REBOOT to reboot the demo node and check that it recovers")


def fail_usage(msg: str) -> None:
    raise pytest.UsageError(msg)


def _coerce(value: str) -> Any:
    for conv in (int, float):
        try:
            return conv(value)
        except ValueError:
            pass
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def _phase_from_args(config: pytest.Config) -> str:
    args = [str(a) for a in config.args]
    if any("acceptance" in a for a in args) and not any("preflight" in a for a in args):
        return "acceptance"
    return "preflight"


def build_site(config: pytest.Config) -> Site:
    opt = config.option
    catalog = load_catalog(opt.catalog) if opt.catalog else default_catalog()
    packs = load_packs(opt.checks, default_catalog())   # a site's own requirements join the catalog
    profile = opt.profile
    if profile is not None:
        profile = {"prod": "production"}.get(profile, profile)
        if profile not in ("demo", "production"):
            raise SiteError(f"--profile {opt.profile!r}: unknown profile (use demo or production)")
    phase = opt.phase or _phase_from_args(config)
    if phase not in ("preflight", "acceptance"):
        raise SiteError(f"--phase {phase!r}: unknown phase (use preflight or acceptance)")
    inv_path = getattr(opt, "ansible_inventory", None)
    hosts_opt = getattr(opt, "hosts", None)
    site_vars: dict[str, Any] = {}
    secrets: list[str] = []
    redacted: list[str] = []
    ssh_given: dict[str, Any] = {}
    inventory_kind_: str | None = None
    if inv_path and hosts_opt:
        raise SiteError("give either --hosts or --ansible-inventory, not both")
    if inv_path:
        inv = inventory_from_controller(config) or load_inventory(inv_path)
        config._wc_inventory = inv  # type: ignore[attr-defined]
        inventory_kind_ = inventory_kind(inv)
        if inventory_kind_ == "wiab-staging":
            raise SiteError(f"{inv_path} is wire-server-deploy's wiab-staging inventory (Wire in a Box staging: "
                            "one adminhost running seven VMs, offline/wiab-staging.md); wirecheck has no "
                            "wiab-staging profile and does not judge it by the demo's or production's "
                            "requirements: not supported")
        profile = profile or infer_profile(inv)
        extra = getattr(opt, "ssh_extra_args", None)
        import shlex
        ssh = SshOverrides(ssh_config=getattr(opt, "ssh_config", None),
                           identity_file=getattr(opt, "ssh_identity_file", None),
                           extra_args=shlex.split(extra) if extra else [])
        try:
            targets = targets_from_inventory(inv, profile, connect_timeout=opt.connect_timeout, overrides=ssh)
        except TargetError as exc:          # often an example value of Wire's template: name every one left
            from . import placeholders
            hits, _ = placeholders.scan(placeholders.inventory_files(Path(inv_path)))
            if not hits:
                raise
            raise TargetError(f"{exc}; the inventory still holds {len(hits)} example value(s) of Wire's templates: "
                              + "; ".join(str(h) for h in hits[:10])) from None
        ssh_given = ssh.describe()
        site_vars = dict(inv.all_vars)
        for hv in inv.hosts.values():
            if "target_domain" in hv or "wire_ip" in hv:
                for k, v in hv.items():
                    site_vars.setdefault(k, v)
                break
        for hv in inv.hosts.values():
            for k, v in secrets_in({**inv.all_vars, **hv}):      # nested, and PEM keys by their look
                secrets.append(v)
                redacted.append(k)
        for t in targets:     # the passwords as used: a Jinja template in the inventory rendered
            for value, var in ((getattr(t.transport, "_password", None), "ansible_password"),
                               (getattr(t.transport, "_become_password", None), t.transport.become_var)):
                if value:
                    secrets.append(str(value))
                    redacted.append(str(var or "password"))
    else:
        profile = profile or "demo"
        roles = [r.strip() for r in opt.roles.split(",")] if opt.roles else (
            ["deploy_node"] if profile == "demo" else ["all"])
        if hosts_opt:
            extra = getattr(opt, "ssh_extra_args", None)
            import shlex
            extra_args = shlex.split(extra) if extra else []
            targets = [target_from_spec(spec, roles, identity_file=getattr(opt, "ssh_identity_file", None),
                                        ssh_config=getattr(opt, "ssh_config", None), extra_args=extra_args,
                                        connect_timeout=opt.connect_timeout)
                       for spec in hosts_opt.split(",") if spec.strip()]
            for t in targets:
                pw = getattr(t.transport, "_password", None)
                if pw:
                    secrets.append(pw)
                    redacted.append("password in --hosts")
        else:
            targets = [local_target(roles)]
            targets[0].name = "deploy_node" if profile == "demo" else "localhost"
    if not 0 < opt.command_timeout <= 3600:
        raise SiteError(f"--command-timeout {opt.command_timeout:g}: give seconds between 0 and 3600")
    for t in targets:
        t.command_timeout = opt.command_timeout
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise SiteError(f"the same host is given twice: {sorted({n for n in names if names.count(n) > 1})}")
    domain = opt.domain if opt.domain is not None else site_vars.get("target_domain") or site_vars.get("domain")
    if domain not in (None, ""):
        domain = check_domain(str(domain), "--domain" if opt.domain is not None else "inventory target_domain")
    else:
        domain = None
    wire_ip = opt.wire_ip if opt.wire_ip is not None else site_vars.get("wire_ip")
    wire_ip = check_ipv4(str(wire_ip), "--wire-ip" if opt.wire_ip is not None else "inventory wire_ip") \
        if wire_ip not in (None, "") else None
    nameservers = [parse_nameserver(n) for n in opt.nameserver]
    overrides: dict[str, dict[str, Any]] = {}
    for item in opt.param:
        m = re.match(r"^([A-Z0-9-]+)\.([a-z_][a-z0-9_]*)=(.*)$", item)
        if not m:
            raise SiteError(f"--param {item!r}: expected ID.NAME=VALUE, e.g. DEMO-SYS-CPU.min_cores=8")
        rid, key, value = m.groups()
        req = catalog[rid]
        if key not in req.params:
            raise SiteError(f"--param {item!r}: {rid} has no parameter {key!r} (has: {', '.join(req.params) or 'none'})")
        overrides.setdefault(rid, {})[key] = _coerce(value)
    for path, name in ((opt.ca_bundle, "--ca-bundle"), (opt.kubeconfig, "--kubeconfig"), (opt.tls_cert, "--tls-cert"),
                       (opt.tls_key, "--tls-key"), (opt.federation_cert, "--federation-cert")):
        if path and not os.path.isfile(path):
            raise SiteError(f"{name} {path}: no such file")
    for k, v in file_secrets(opt.kubeconfig, opt.tls_key):     # kubeconfig tokens, the --tls-key key
        secrets.append(v)
        redacted.append(k)
    return Site(profile=profile, phase=phase, targets=targets, vars=site_vars, domain=domain, wire_ip=wire_ip,
                nameservers=nameservers, ca_bundle=opt.ca_bundle, kubeconfig=opt.kubeconfig,
                report_dir=Path(opt.report_dir), inventory_path=inv_path, overrides=overrides,
                options=dict(vars(opt)), secrets=sorted(set(secrets), key=len, reverse=True),
                redacted_fields=sorted(set(redacted)), site_packs=packs, ssh_overrides=ssh_given,
                inventory_kind=inventory_kind_)


def load_exceptions(config: pytest.Config) -> dict[str, Any]:
    opt = config.option
    out: dict[str, Any] = {"waivers": None, "attestations": None, "today": dt.date.today(), "key": None}
    if opt.waivers:
        from .report import waivers
        out["waivers"] = waivers.load(Path(opt.waivers))
    if opt.attestations:
        from .report import attestations
        out["attestations"] = attestations.load(Path(opt.attestations))
    if opt.report_date:
        try:
            out["today"] = dt.date.fromisoformat(opt.report_date)
        except ValueError:
            raise SiteError(f"--report-date {opt.report_date!r} is not a date (YYYY-MM-DD)") from None
    if opt.sign_key:
        if not os.path.isfile(opt.sign_key):
            raise SiteError(f"--sign-key {opt.sign_key}: no such file")
        out["key"] = Path(opt.sign_key)
    return out

