"""The pytest plugin: options, targets, parametrization, verdicts and the compliance report."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from . import __version__
from .catalog import CatalogError, Requirement, default_catalog, load_catalog
from .exit_status import report_outcome
from .outcome import ERROR, FAIL, NOT_APPLICABLE, NOT_EVALUATED, PASS, WARN, Broken, Outcome, begin, end
from .report_json import build_compliance, jsonable, write_compliance
from .site import Site, SiteError, check_domain, check_ipv4, file_secrets, parse_nameserver
from .sitepacks import load_packs
from .sitepacks import registry as pack_registry
from .targets import (
    Inventory,
    SshOverrides,
    TargetError,
    infer_profile,
    inventory_kind,
    is_secret_key,
    load_inventory,
    local_target,
    secrets_in,
    target_from_spec,
    targets_from_inventory,
)
from .transport import TransportError, enable_sharing, share_run_dir

SITE_KEY = pytest.StashKey[Site]()
RESULTS_KEY = pytest.StashKey[list]()
STARTED_KEY = pytest.StashKey[str]()
SHARED_KEY = pytest.StashKey[str]()
GROUP_OF: dict[str, str] = {}     # nodeid -> xdist group (this process's collection)


def pytest_addoption(parser: pytest.Parser) -> None:
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
    g.addoption("--port-timeout", type=float, default=3.0, help="TCP connect timeout of the port probes (default 3 s)")
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


def _fail_usage(msg: str) -> None:
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
        inv = _inventory_from_controller(config) or load_inventory(inv_path)
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


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requirement(id): the catalog requirement a check verifies")
    if getattr(config.option, "numprocesses", None) and getattr(config.option, "dist", "no") in ("no", "load"):
        config.option.dist = "loadgroup"   # a host's checks on one worker: its facts are measured once
    if getattr(config.option, "help", False):
        return
    winput = getattr(config, "workerinput", None)
    if winput and winput.get("wirecheck_run_dir"):
        share_run_dir(winput["wirecheck_run_dir"])   # the controller's SSH masters and host snapshots
        config.stash[SHARED_KEY] = winput["wirecheck_run_dir"]
    try:
        site = build_site(config)
    except (SiteError, TargetError, CatalogError) as exc:
        _fail_usage(str(exc))
    config.stash[SITE_KEY] = site
    config.stash[RESULTS_KEY] = []
    _CONFIG["config"] = config
    try:
        config._wc_exceptions = _load_exceptions(config)  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - a bad file is a user error: one line
        _fail_usage(str(exc))
    if not hasattr(config, "workerinput"):
        # a report being written is not sealed: drop the seal of an earlier run in the same directory
        for name in ("integrity.json", "integrity.sig"):
            (site.report_dir / name).unlink(missing_ok=True)
    config.stash[STARTED_KEY] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    if _xdist_controller(config) and not config.option.collectonly:
        # While the workers start (two seconds and more), this process connects to every host and
        # takes its snapshot; the workers then use its connections and read what it measured.
        config.stash[SHARED_KEY] = enable_sharing()
        _PRIMER.start(site)


def _xdist_controller(config: pytest.Config) -> bool:
    return (not hasattr(config, "workerinput") and bool(getattr(config.option, "numprocesses", None))
            and getattr(config.option, "dist", "no") != "no")


class RunTimeLimit(Outcome):  # noqa: N818
    status = ERROR


def _deadline(config: pytest.Config) -> float | None:
    """Absolute deadline (epoch seconds), the same on the controller and every xdist worker."""
    limit = config.option.max_run_time
    if not limit:
        return None
    winput = getattr(config, "workerinput", None)
    if winput and "wirecheck_deadline" in winput:
        return float(winput["wirecheck_deadline"])
    if not hasattr(config, "_wc_deadline"):
        config._wc_deadline = time.time() + limit  # type: ignore[attr-defined]
    return config._wc_deadline  # type: ignore[attr-defined]


def _inventory_from_controller(config: pytest.Config) -> Inventory | None:
    """In an xdist worker: the inventory as the controller parsed it (Ansible's parser is not loaded
    again in every worker: that costs a third of a second of CPU each)."""
    text = (getattr(config, "workerinput", None) or {}).get("wirecheck_inventory")
    if not text:
        return None
    data = json.loads(text)
    return Inventory(hosts=data["hosts"], groups=data["groups"], all_vars=data["all_vars"],
                     connection=data.get("connection", {}), path=data.get("path", ""))


GROUPS_FILE = "xdist-groups.json"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):  # xdist hook (controller side)
    """--dist loadgroup (what wirecheck sets for -n) by wirecheck's own groups: see HostScheduling."""
    if config.getvalue("dist") != "loadgroup" or not config.stash.get(SHARED_KEY, None):
        return None
    from .xdist_scheduling import HostScheduling
    return HostScheduling(config, log, Path(config.stash[SHARED_KEY]) / GROUPS_FILE)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """In an xdist worker, before it reports its collection: every item's group, for the controller's
    scheduler (the workers collect alike; the first to get here writes the file)."""
    if not hasattr(session.config, "workerinput") or not session.config.stash.get(SHARED_KEY, None):
        return
    path = Path(session.config.stash[SHARED_KEY]) / GROUPS_FILE
    if path.exists():
        return
    groups = {item.nodeid: GROUP_OF.get(item.nodeid) for item in session.items}
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(groups))
    os.replace(tmp, path)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:  # xdist hook (controller side)
    deadline = _deadline(node.config)
    if deadline:
        node.workerinput["wirecheck_deadline"] = deadline
    inv = getattr(node.config, "_wc_inventory", None)
    if inv is not None:
        data = {"hosts": inv.hosts, "groups": inv.groups, "all_vars": inv.all_vars, "connection": inv.connection,
                "path": inv.path}
        try:
            text = json.dumps(data)
            if json.loads(text) == data:     # else a value JSON cannot carry as it is (a date, an int key)
                node.workerinput["wirecheck_inventory"] = text
        except (TypeError, ValueError):
            pass     # the worker reads the inventory itself
    shared = node.config.stash.get(SHARED_KEY, None)
    if shared:
        node.workerinput["wirecheck_run_dir"] = shared


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    deadline = _deadline(item.config)
    if deadline and time.time() >= deadline:
        item.session.shouldstop = "wirecheck: --max-run-time reached"
        raise RunTimeLimit(f"not run: the run reached --max-run-time ({item.config.option.max_run_time:g} s)")


class _Alarm:
    """Interrupts a running check when the run's deadline passes (main thread only)."""

    def __init__(self, item: pytest.Item):
        self.deadline = _deadline(item.config)
        self.limit = item.config.option.max_run_time
        self.item = item

    def __enter__(self):
        import signal
        import threading
        if not self.deadline or threading.current_thread() is not threading.main_thread():
            self.deadline = None
            return self

        def expired(signum, frame):
            self.item.session.shouldstop = "wirecheck: --max-run-time reached"
            raise RunTimeLimit(f"stopped: the run reached --max-run-time ({self.limit:g} s)")
        self.previous = signal.signal(signal.SIGALRM, expired)
        signal.setitimer(signal.ITIMER_REAL, max(0.01, self.deadline - time.time()))
        return self

    def __exit__(self, *exc):
        if self.deadline:
            import signal
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)
        return False


def _load_exceptions(config: pytest.Config) -> dict[str, Any]:
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


def _allure_active(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "allure_report_dir", None))


def pytest_unconfigure(config: pytest.Config) -> None:
    _PRIMER.stop()
    site = config.stash.get(SITE_KEY, None)
    if site:
        _each_target(site.targets, _close)


def _close(target: Any) -> None:
    try:
        target.close()
    except Exception:  # noqa: BLE001 - closing is best effort
        pass


def _each_target(targets, fn) -> None:
    """fn(target) for every target: in threads when there are several (each host has its own
    connection, so they do not wait on one another)."""
    if len(targets) == 1:
        fn(targets[0])
        return
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(targets)))) as pool:
        list(pool.map(fn, targets))


def requirement_of(item: pytest.Item | Any) -> Requirement | None:
    mark = item.get_closest_marker("requirement") if hasattr(item, "get_closest_marker") else None
    if mark is None:
        return None
    return default_catalog()[mark.args[0]]


class Spec:
    """A requirement's parameters by attribute (spec.min_cores), with --param overrides applied."""

    def __init__(self, req: Requirement, overrides: dict[str, Any]):
        self.req = req
        self._params = {**req.params, **overrides}
        self.overridden = dict(overrides)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._params[name]
        except KeyError:
            raise AttributeError(f"{self.req.id} has no parameter {name!r} in the catalog") from None

    def get(self, name: str, default: Any = None) -> Any:
        return self._params.get(name, default)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    mark = metafunc.definition.get_closest_marker("requirement")
    if mark is None or "target" not in metafunc.fixturenames:
        return
    req = default_catalog()[mark.args[0]]
    site = metafunc.config.stash[SITE_KEY]
    targets = [t for t in site.targets if req.applies_to_roles(t.roles)]
    if targets:
        metafunc.parametrize("target", targets, ids=[t.name for t in targets], scope="function")
    else:
        metafunc.parametrize("target", [None], ids=["no-host-in-role"], scope="function")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """xdist groups: a host's checks go together to one worker (its facts are measured once there, and
    its port probe runs once: two listeners on one host would fight over its ports); each fleet or
    site check (no target of its own) is a group of one, so the slow ones (probes from every host to
    every other) can run side by side on different workers.  The groups reach the controller's
    scheduler through the run directory (see pytest_collection_finish)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        target = callspec.params.get("target") if callspec else None
        GROUP_OF[item.nodeid] = f"host:{target.name}" if target is not None else f"check:{item.nodeid}"


@pytest.fixture
def site(request: pytest.FixtureRequest) -> Site:
    return request.config.stash[SITE_KEY]


@pytest.fixture
def spec(request: pytest.FixtureRequest) -> Spec:
    req = requirement_of(request.node)
    if req is None:
        raise RuntimeError("the spec fixture is for checks marked with @requirement")
    return Spec(req, request.config.stash[SITE_KEY].overrides.get(req.id, {}))


_CONTROL: dict[str, Any] = {}


@pytest.fixture
def control(request: pytest.FixtureRequest):
    """The machine running pytest (the Ansible control machine in Wire's docs)."""
    if "t" not in _CONTROL:
        t = local_target(["control"])
        t.name = "control"
        t.command_timeout = request.config.option.command_timeout
        _CONTROL["t"] = t
    return _CONTROL["t"]


def _applicability(req: Requirement, site: Site, item: pytest.Item) -> str | None:
    if site.profile not in req.profiles:
        return f"{req.id} is for the {' and '.join(req.profiles)} profile; this run is {site.profile}"
    if site.phase not in req.phases:
        return f"{req.id} is checked in the {' and '.join(req.phases)} phase; this run is {site.phase}"
    callspec = getattr(item, "callspec", None)
    if callspec and "target" in callspec.params and callspec.params["target"] is None:
        return f"no target has role {', '.join(req.roles)}"
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    req = requirement_of(item)
    if req is None:
        return (yield)
    site = item.config.stash[SITE_KEY]
    ev, token = begin()
    item._wc_evidence = ev  # type: ignore[attr-defined]
    item._wc_started = time.monotonic()  # type: ignore[attr-defined]
    try:
        reason = _applicability(req, site, item)
        if reason:
            raise NotApplicableMarker(reason)
        _prime(item, site)
        try:
            with _Alarm(item):
                result = yield
        except Outcome as exc:
            # A verdict, not a crash: its traceback (and any chained library error) is never shown, and
            # formatting a deep one costs seconds. Drop both before pytest renders the report.
            exc.__cause__ = exc.__context__ = None
            exc.__suppress_context__ = True
            raise exc.with_traceback(None) from None
        except TransportError as exc:
            raise exc.with_traceback(None) from None
        if ev.broken:
            raise Broken("; ".join(ev.broken))
        return result
    finally:
        end(token)


def prime_paths(site: Site, target: Any) -> tuple[str, ...]:
    """The file systems a host snapshot includes: every path a disk or sizing check of the profile asks
    about (DEMO-SYS-DISK's paths; the data paths of the production sizing rows), with --param applied."""
    paths = {"/"}
    user = target.user or getattr(target.transport, "user", None)
    for req in default_catalog():
        if site.profile not in req.profiles:
            continue
        params = {**req.params, **site.overrides.get(req.id, {})}
        if req.id == "DEMO-SYS-DISK":
            paths.update(str(p).format(user=user) for p in params.get("paths", ["/"]) if user or "{user}" not in str(p))
        if params.get("data_path"):
            paths.add(str(params["data_path"]))
    return tuple(sorted(paths))


def _prime_one(target: Any, site: Site) -> None:
    if getattr(target, "_wc_primed", False):
        return
    target._wc_primed = True
    paths = prime_paths(site, target)
    try:
        target.facts.host_snapshot(paths)
    except Exception:  # noqa: BLE001 - priming only; the checks themselves report what fails
        pass


def _prime_all(site: Site) -> None:
    _each_target(site.targets, lambda t: _prime_one(t, site))


class _Primer:
    """An xdist controller's priming of every target, in the background while the workers start."""

    def __init__(self) -> None:
        self.pool: Any = None
        self.futures: list[Any] = []

    def start(self, site: Site) -> None:
        from concurrent.futures import ThreadPoolExecutor
        self.pool = ThreadPoolExecutor(max_workers=min(16, len(site.targets)), thread_name_prefix="wirecheck-prime")
        self.futures = [self.pool.submit(_prime_one, t, site) for t in site.targets]

    def stop(self) -> None:
        """Before the targets are closed: drop what has not started (a run stopped early), wait for what
        has (each command has its own time limit; 30 s is a backstop)."""
        if self.pool is None:
            return
        from concurrent.futures import wait
        self.pool.shutdown(wait=False, cancel_futures=True)
        wait(self.futures, timeout=30)
        self.pool, self.futures = None, []


_PRIMER = _Primer()
_PRIMED_ALL = [False]


def _prime(item: pytest.Item, site: Site) -> None:
    """Before a target's first check: one SSH command that fills most fact caches (os-release, cores,
    memory, addresses, routes, sysctls, the filesystems the disk checks ask about), instead of one round
    trip per fact. Best effort: a check whose fact is missing measures it itself and reports errors.

    In a serial run every target is connected and primed at once, in threads (still one connection per
    host).  Under xdist the controller has done that while the workers started: a worker finds the
    host's master connection and reads its snapshot from the run directory.  A fleet check (no target
    of its own) reads every host's."""
    callspec = getattr(item, "callspec", None)
    target = callspec.params.get("target") if callspec else None
    if target is None:
        if hasattr(item.config, "workerinput") and not _PRIMED_ALL[0] and site.targets:
            _PRIMED_ALL[0] = True
            _prime_all(site)
        return
    serial = not hasattr(item.config, "workerinput") and not getattr(item.config.option, "numprocesses", None)
    if serial and not _PRIMED_ALL[0] and len(site.targets) > 1:
        _PRIMED_ALL[0] = True
        _prime_all(site)
    _prime_one(target, site)


class NotApplicableMarker(Outcome):
    status = NOT_APPLICABLE


def _redact(value: Any, secrets: list[str]) -> Any:
    if not secrets:
        return value
    if isinstance(value, str):
        for s in secrets:
            if s and s in value:
                value = value.replace(s, "<redacted>")
        return value
    if isinstance(value, dict):
        return {_redact(k, secrets): ("<redacted>" if is_secret_key(str(k)) else _redact(v, secrets))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, secrets) for v in value]
    return value


def _redact_report(report: pytest.TestReport, exc: BaseException | None, secrets: list[str]) -> None:
    """Secrets out of the exception (Allure formats it itself), the traceback pytest already rendered
    (with --showlocals too) and captured output sections (JUnit's system-out)."""
    if exc is not None:
        exc.args = tuple(_redact(a, secrets) if isinstance(a, str) else a for a in exc.args)
        if isinstance(getattr(exc, "message", None), str):
            exc.message = _redact(exc.message, secrets)  # type: ignore[attr-defined]
    if report.longrepr is not None and not isinstance(report.longrepr, str | tuple):
        text = str(report.longrepr)
        if any(s in text for s in secrets):
            report.longrepr = _redact(text, secrets)
    report.sections = [(title, _redact(body, secrets)) for title, body in report.sections]


def _message(req: Requirement, target_name: str, status: str, text: str, method: str | None) -> str:
    how = f" ({method})" if method and method not in text else ""
    return f"{req.id} on {target_name}: {text}{how}"


def _cheap_excinfo(exc: BaseException) -> pytest.ExceptionInfo:
    """A stand-in for pytest's report building: a verdict's text, without a traceback to render."""
    try:
        raise pytest.fail.Exception(str(exc), pytrace=False)
    except pytest.fail.Exception:
        return pytest.ExceptionInfo.from_current()


@pytest.hookimpl(wrapper=True, trylast=True)   # innermost: report tools (Allure) see our outcome
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    original = call.excinfo
    if original is not None and isinstance(original.value, (Outcome, TransportError)) \
            and requirement_of(item) is not None:
        # pytest would render a full traceback for the report (0.1 s and more per verdict) only for us
        # to replace it; let it render the message. Outer hooks (Allure) see the real exception again.
        call.excinfo = _cheap_excinfo(original.value)
    try:
        report = yield
    finally:
        call.excinfo = original
    req = requirement_of(item)
    if req is None:
        return report
    if call.when == "setup" and report.passed:
        return report
    if call.when == "teardown" and (report.passed or getattr(item, "_wc_reported", False)):
        return report
    site = item.config.stash[SITE_KEY]
    ev = getattr(item, "_wc_evidence", None)
    callspec = getattr(item, "callspec", None)
    target = callspec.params.get("target") if callspec else None
    if target is not None:
        target_name = target.name
    elif "control" in getattr(item, "fixturenames", ()):
        target_name = "control"
    else:
        target_name = site.domain or "site"
    exc = call.excinfo.value if call.excinfo else None
    details: dict[str, Any] = dict(ev.details) if ev else {}
    keep_traceback = False
    if exc is None and call.when == "call" and not (ev and ev.held):
        # No pass without a measurement: a check that returned without one expectation holding
        # judged nothing (a branch that forgot to measure, or to say why it could not).
        status, text = ERROR, ("the check ended without comparing any measured value with the requirement, "
                               "so it cannot pass (a defect in the check: report it)")
    elif exc is None:
        status, text = PASS, None
    elif isinstance(exc, Broken):
        status, text = (FAIL if req.level == "must" else WARN), exc.message
    elif isinstance(exc, RunTimeLimit):
        status, text = NOT_EVALUATED, exc.message
    elif isinstance(exc, Outcome):
        status, text = exc.status, exc.message
        details.update({k: v for k, v in exc.evidence.items() if v is not None})
    elif isinstance(exc, TransportError):
        status, text = ERROR, f"could not measure: {exc}"
    elif isinstance(exc, (pytest.skip.Exception,)):
        status, text = NOT_EVALUATED, f"skipped: {exc}"
    else:
        status, text = ERROR, f"check crashed: {type(exc).__name__}: {exc}"
        keep_traceback = True
    observed = ev.observed if ev else None
    expected = ev.expected if ev else None
    method = ev.method if ev else None
    if text is None:
        if ev and ev.held:
            text = "; ".join(ev.held)
        else:
            text = f"{observed}" if observed is not None else "as required"
    message = _message(req, target_name, status, text, method)
    result = {
        "target": target_name, "status": status, "observed": jsonable(observed), "expected": jsonable(expected),
        "method": method, "message": message,
        "remediation": req.remediation if status in (FAIL, WARN, ERROR) else None,
        "check": item.nodeid, "duration": round(time.monotonic() - getattr(item, "_wc_started", time.monotonic()), 3),
    }
    if details:
        result["evidence"] = jsonable(details)
    result = _redact(result, site.secrets)
    if site.secrets:      # what report tools read besides our result: the exception (Allure), tracebacks, output
        _redact_report(report, exc, site.secrets)
    report.wirecheck = {"id": req.id, "result": result}
    item._wc_reported = True  # type: ignore[attr-defined]
    if _allure_active(item.config):
        _label_for_allure(item, req, site, target, result)
    if call.when == "setup" and status == PASS:
        return report
    report.outcome = report_outcome(status)       # error and fail fail the run (wirecheck.exit_status)
    if report.outcome == "passed":
        report.longrepr = None
    elif report.outcome == "skipped":
        path, lineno, _ = item.reportinfo()
        report.longrepr = (str(path), (lineno or 0) + 1, f"{status}: {result['message']}")
    else:
        if not keep_traceback:
            fix = f"\n  fix: {req.remediation}" if req.remediation and status == FAIL else ""
            report.longrepr = result["message"] + fix
    return report


_LAST_WRITE = [0.0]


def _label_for_allure(item: pytest.Item, req: Requirement, site: Site, target: Any, result: dict[str, Any]) -> None:
    from .report.allure import apply_labels, attach_evidence, labels_for
    entry = {"id": req.id, "title": req.title, "level": req.level, "area": req.area, "url": req.url,
             "source": req.source, "requirement": req.requirement, "remediation": req.remediation,
             "roles": list(req.roles)}
    try:
        apply_labels(labels_for(entry, result, site.profile, site.phase,
                                target_roles=list(target.roles) if target is not None else None))
        attach_evidence(result, site.report_dir)
    except Exception as exc:  # noqa: BLE001 - labels are decoration; never lose the verdict over them
        item.warn(pytest.PytestWarning(f"wirecheck: could not label the Allure result: {exc}"))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    data = getattr(report, "wirecheck", None)
    if not data:
        return
    _RESULTS.append(data)
    cfg = _CONFIG.get("config")
    # a run that is killed still leaves a valid (partial) report behind
    if cfg is not None and not hasattr(cfg, "workerinput") and time.monotonic() - _LAST_WRITE[0] > 2:
        _LAST_WRITE[0] = time.monotonic()
        _write(cfg, complete=False)


_CONFIG: dict[str, pytest.Config] = {}


_RESULTS: list[dict[str, Any]] = []


def _registry(root: Path, packs=()) -> dict[str, set[str]]:
    """Requirement IDs that have checks, per phase, from the suites' (and the site packs') source."""
    found: dict[str, set[str]] = {"preflight": set(), "acceptance": set()}
    for phase, ids in pack_registry(list(packs)).items():
        found[phase] |= ids
    pat = re.compile(r"""@requirement\(\s*["']([A-Z0-9-]+)["']""")
    for phase in found:
        for path in (root / "suites" / phase).rglob("*.py"):
            found[phase].update(pat.findall(path.read_text(encoding="utf-8", errors="replace")))
    return found


def _write(config: pytest.Config, complete: bool, final: bool = False) -> dict[str, Any]:
    site = config.stash[SITE_KEY]
    root = Path(__file__).resolve().parent.parent
    compliance = build_compliance(
        catalog=default_catalog(), site=site, results=_RESULTS, registry=_registry(root, site.site_packs),
        started=config.stash[STARTED_KEY], version=__version__)
    compliance["complete"] = complete
    stopped = getattr(config, "_wc_stopped", None)
    if stopped:
        compliance["stopped"] = stopped
    try:
        if final:
            from .report import write_all
            exc_ = getattr(config, "_wc_exceptions", {}) or {}
            compliance = write_all(site.report_dir, compliance, waivers=exc_.get("waivers"),
                                   attestations=exc_.get("attestations"), today=exc_.get("today"),
                                   signing_key=exc_.get("key"))
        else:
            write_compliance(site.report_dir, compliance)
    except Exception as exc:  # noqa: BLE001 - report the failure in one line, keep the run's verdict
        config._wc_write_error = f"could not write the report in {site.report_dir}: {exc}"  # type: ignore[attr-defined]
    return compliance


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if hasattr(config, "workerinput") or SITE_KEY not in config.stash:
        return
    if getattr(config.option, "collectonly", False):
        return
    if session.shouldstop:
        config._wc_stopped = str(session.shouldstop)  # type: ignore[attr-defined]
    if exitstatus == pytest.ExitCode.INTERRUPTED and not getattr(config, "_wc_stopped", None):
        config._wc_stopped = "interrupted"  # type: ignore[attr-defined]
    config._wc_compliance = _write(config, complete=exitstatus != pytest.ExitCode.INTERRUPTED,  # type: ignore[attr-defined]
                                   final=True)
    alluredir = getattr(config.option, "allure_report_dir", None)
    if alluredir and config._wc_compliance:  # type: ignore[attr-defined]
        from .report.allure import write_categories, write_environment
        write_environment(Path(alluredir), config._wc_compliance)  # type: ignore[attr-defined]
        write_categories(Path(alluredir))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    compliance = getattr(config, "_wc_compliance", None)
    if not compliance:
        return
    from .report_json import summary_lines
    for line in summary_lines(compliance, verbose=config.getoption("verbose", 0) > 0):
        terminalreporter.write_line(line)
    err = getattr(config, "_wc_write_error", None)
    if err:
        terminalreporter.write_line(f"wirecheck: {err}", red=True)
    else:
        terminalreporter.write_line(f"wirecheck: results written to {config.stash[SITE_KEY].report_dir}/compliance.json")
