"""The control machine (where Ansible runs) and the site's configuration files."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import stat
from pathlib import Path

from wirecheck import cannot_measure, expect, fail, not_applicable, not_evaluated, record, requirement


def _ansible_tool(control, tool: str) -> str:
    """The path of an Ansible command the operator will run: the first on PATH (under the provisioner,
    PATH starts with the provisioner's own environment, whose ansible it runs the playbooks with)."""
    path = control.facts.which(tool)
    record(**{f"{tool.replace('-', '_')}_path": path})
    if not path:
        fail(f"{tool} is not installed on the control machine (not on PATH)", observed=f"no {tool} on PATH",
             expected=f"{tool} on PATH", method="command -v " + tool)
    return path


def _ran(control, res, tool: str, method: str) -> None:
    """A command that did not run to the end is not a measurement: its own words say why."""
    if res.rc != 0:
        why = (res.stderr.strip() or res.stdout.strip() or f"exit {res.rc}").splitlines()[-1][:300]
        cannot_measure(f"`{method}` failed with exit {res.rc} in locale C.UTF-8: {why}", method=method)


@requirement("CTRL-ANSIBLE-VERSION")
def test_ansible_version(control, spec, site):
    path = _ansible_tool(control, "ansible")
    method = f"{path} --version"
    res = control.run(f"{shlex.quote(path)} --version", timeout=60)
    _ran(control, res, "ansible", method)
    m = re.search(r"core (\d+)\.(\d+)\.(\d+)", res.stdout)
    if not m:
        cannot_measure(f"`{method}` printed no ansible-core version: {res.stdout.strip()[:200]!r}", method=method)
    version = ".".join(m.groups())
    record(ansible_core=version)
    if site.profile == "production":
        record(note="production docs name conflicting Ansible releases; recorded, not judged")
        expect(version, "ansible-core", method=method).is_true("any ansible-core (recorded)")
        return
    major_minor = ".".join(version.split(".")[:2])
    expect(major_minor, f"ansible-core release of {path}", method=method).satisfies(
        lambda v: v == str(spec.demo_core), f"{spec.demo_core}.x",
        f"{path} is ansible-core {version}; Wire's demo playbooks are pinned to {spec.demo_core}.x: install "
        f"`pip install 'ansible-core>={spec.demo_core},<{_next_minor(str(spec.demo_core))}'`")


def _next_minor(release: str) -> str:
    major, minor = release.split(".")[:2]
    return f"{major}.{int(minor) + 1}"


@requirement("CTRL-ANSIBLE-COLLECTIONS")
def test_ansible_collections(control, spec):
    path = _ansible_tool(control, "ansible-galaxy")
    method = f"{path} collection list --format json"
    res = control.run(f"{shlex.quote(path)} collection list --format json", timeout=60)
    found: dict[str, str] = {}
    try:
        listing = json.loads(res.stdout or "")
        for _path, cols in listing.items():
            for name, info in cols.items():
                found.setdefault(name, info.get("version", "?"))
    except (json.JSONDecodeError, AttributeError) as exc:
        # ansible-galaxy exits non-zero with "None of the provided paths were usable" when there is no
        # collection directory at all: that is an empty listing, not a failure to measure
        if "None of the provided paths were usable" not in res.stderr + res.stdout:
            _ran(control, res, "ansible-galaxy", method)
            cannot_measure(f"`{method}` printed no JSON listing ({exc}): {res.stdout.strip()[:200]!r}", method=method)
    missing = [c for c in spec.collections if c not in found]
    record(found={c: found.get(c) for c in spec.collections})
    expect(missing, "missing collections", method=method).is_empty(
        ", ".join(spec.collections), "missing Ansible collections for " + path + ": " + ", ".join(missing)
        + " (install them with `ansible-galaxy collection install " + " ".join(missing) + "`)")


@requirement("CTRL-FETCH-TOOLS")
def test_fetch_tools(control, spec):
    found = {tool: control.facts.which(tool) for tool in spec.any_of}
    record(found=found)
    expect([t for t, p in found.items() if p], "unzip or git", method="command -v").is_true(
        " or ".join(spec.any_of), "neither unzip nor git is installed on the control machine")


@requirement("CTRL-NETCAT")
def test_netcat(control, site):
    if site.wire_ip:
        not_applicable("wire_ip is set, so the playbook does not probe with nc from the control machine")
    path = control.facts.which("nc") or ""      # "": the shell says it is not there
    expect(path, "nc", method="command -v nc").is_true(
        "netcat on the control machine", "nc is missing: the wire_ip auto-detection runs `nc -zv` here")


def _wsd(site) -> Path:
    path = site.option("wire_server_deploy")
    if not path:
        not_evaluated("the wire-server-deploy checkout was not named", option="--wire-server-deploy")
    return Path(path).expanduser()


@requirement("CTRL-WSD-CHECKOUT")
def test_wire_server_deploy(spec, site, control):
    root = _wsd(site)
    files = spec.demo_files if site.profile == "demo" else spec.production_files
    missing = [f for f in files if not (root / f).is_file()]
    record(checked=files, root=str(root))
    if site.profile == "production" and (root / ".git").exists():
        res = control.run(f"git -C {__import__('shlex').quote(str(root))} submodule status --recursive", timeout=60)
        bad = [ln.strip() for ln in res.stdout.splitlines() if ln[:1] in ("-", "+")]
        record(submodules_not_ready=bad)
        missing += [f"submodule {ln.split()[1]} ({'not initialised' if ln.startswith('-') else 'wrong commit'})"
                    for ln in bad if len(ln.split()) > 1]
    expect(missing, "wire-server-deploy material", method=f"files under {root}").is_empty(
        "complete checkout", f"{root} lacks: " + ", ".join(missing))


def _demo_host_vars(site) -> tuple[str, dict]:
    if not site.inventory_path:
        not_evaluated("no inventory given", option="--ansible-inventory")
    for t in site.targets:
        if "deploy_node" in t.roles:
            return t.name, t.vars
    fail("the inventory has no host deploy_node", observed=[t.name for t in site.targets],
         expected="a host named deploy_node", method=site.inventory_path)
    raise AssertionError  # unreachable


@requirement("CTRL-DEMO-INVENTORY")
def test_demo_inventory(site, spec):
    name, hv = _demo_host_vars(site)
    # Ansible's aliases count (ansible_ssh_user for ansible_user ...), as Ansible's ssh plugin reads them
    aliases = {"ansible_user": ("ansible_ssh_user",), "ansible_host": ("ansible_ssh_host",),
               "ansible_ssh_private_key_file": ("ansible_private_key_file",)}
    problems = [f"{k} is missing or empty" for k in spec.required
                if all(hv.get(name) in (None, "") for name in (k, *aliases.get(k, ())))]
    for k in ("target_domain", "ansible_host"):
        if str(hv.get(k, "")).strip().lower() == spec.placeholder_domain:
            problems.append(f"{k} is still the shipped {spec.placeholder_domain}")
    key = hv.get("ansible_ssh_private_key_file") or hv.get("ansible_private_key_file")
    if key:
        path = Path(os.path.expanduser(str(key)))
        if not path.is_file():
            problems.append(f"ansible_ssh_private_key_file {key} does not exist")
        elif stat.S_IMODE(path.stat().st_mode) & 0o077:
            problems.append(f"ansible_ssh_private_key_file {key} is readable by others "
                            f"(mode {oct(stat.S_IMODE(path.stat().st_mode))}; ssh wants 0600 or 0400)")
    wire_ip = hv.get("wire_ip")
    if wire_ip not in (None, ""):
        try:
            ipaddress.IPv4Address(str(wire_ip))
        except ValueError:
            problems.append(f"wire_ip {wire_ip!r} is not an IPv4 address")
    ucm = hv.get("use_cert_manager", True)
    if not isinstance(ucm, bool):
        problems.append(f"use_cert_manager {ucm!r} is not a boolean")
    record(host=name, checked=spec.required + ["wire_ip", "use_cert_manager"])
    expect(problems, "inventory problems", method=f"{site.inventory_path} (parsed by Ansible)").is_empty(
        "every required variable filled in", "; ".join(problems))


@requirement("CFG-NO-PLACEHOLDERS")
def test_no_placeholders(site, spec):
    from wirecheck import placeholders

    files: list[Path] = []
    if site.inventory_path:
        files += placeholders.inventory_files(Path(site.inventory_path))
    values = site.option("values_dir") or (str(Path(site.option("wire_server_deploy")).expanduser() / "values")
                                           if site.option("wire_server_deploy") else None)
    if values:
        files += placeholders.values_files(Path(values).expanduser())
    if not files:
        not_evaluated("no inventory or values files to read",
                      option="--ansible-inventory / --wire-server-deploy (values/<chart>/values.yaml)")
    hits, unreadable = placeholders.scan(files, [str(p) for p in spec.placeholders])
    record(files=[str(f) for f in files], placeholders=[str(h) for h in hits])
    method = f"Wire's template vocabulary over {len(files)} file(s): " + ", ".join(str(f) for f in files[:5]) + \
        (" ..." if len(files) > 5 else "")
    if hits:
        fail(f"{len(hits)} example value(s) from Wire's templates left: " + "; ".join(str(h) for h in hits[:12])
             + (f"; and {len(hits) - 12} more (see the evidence)" if len(hits) > 12 else ""),
             observed=[str(h) for h in hits], expected="no example values left", method=method)
    if unreadable:
        cannot_measure("could not read: " + "; ".join(unreadable), method=method)
    expect(hits, "placeholders", method=method).is_empty("no example values left")
