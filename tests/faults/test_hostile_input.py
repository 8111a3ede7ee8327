"""Inventory values, options and remote output are data, never code.

Property-based tests (hypothesis) over the parsers and the command building, then whole runs with an
inventory full of shell syntax against a lab host: nothing is executed anywhere, every check ends in a
verdict, values that cannot be used are refused in one line.
"""

from __future__ import annotations

import glob
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support.wc import run_suite
from wirecheck.facts import parse_meminfo, parse_os_release
from wirecheck.inventory import load_inventory, targets_from_inventory
from wirecheck.outcome import CannotMeasure
from wirecheck.site import SiteError, check_domain, check_ipv4, parse_nameserver
from wirecheck.targets import COMMAND_OPTIONS, TargetError, safe_ssh_args, target_from_spec, valid_address
from wirecheck.transport import LocalTransport, bounded

MARK = "/tmp/wc-owned"
SHELL = set(";|&$`'\"\\<>(){}*?[]!#~\n\r\t ")
# shell syntax that would run `touch MARK<n>` if it ever reached a shell unquoted
PAYLOADS = [f"; touch {MARK}1", f"$(touch {MARK}2)", f"`touch {MARK}3`", f"' ; touch {MARK}4 '",
            f'" ; touch {MARK}5 "', f"\ntouch {MARK}6\n", f"|touch {MARK}7", f"&& touch {MARK}8", f"$'\\x3b' touch {MARK}9"]
hostile = st.one_of(st.text(max_size=40),
                    st.builds(lambda a, p, b: a + p + b, st.text(max_size=8), st.sampled_from(PAYLOADS), st.text(max_size=8)))
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def markers() -> list[str]:
    return glob.glob(MARK + "*")


@pytest.fixture(autouse=True)
def no_marker_before_or_after():
    assert not markers(), f"stale markers from elsewhere: {markers()}"
    yield
    assert not markers(), f"a hostile value was executed: {markers()}"


# --- parsers: a value is accepted as harmless or refused with the module's own error --------------

@FAST
@given(hostile)
@example("x.test; touch /tmp/wc-owned")
def test_domain_is_a_plain_name_or_refused(value):
    try:
        domain = check_domain(value)
    except SiteError as exc:
        assert "\n" not in str(exc).strip("\n") or "\n" in value
        return
    assert set(domain) <= set("abcdefghijklmnopqrstuvwxyz0123456789.-") and not domain.startswith("-")


@FAST
@given(hostile)
def test_nameserver_and_ipv4_are_addresses_or_refused(value):
    try:
        host, port = parse_nameserver(value)
        assert not SHELL & set(host) and 0 < port < 65536
    except SiteError:
        pass
    try:
        assert not SHELL & set(check_ipv4(value))
    except SiteError:
        pass


@FAST
@given(hostile)
def test_addresses_never_carry_shell_syntax_or_look_like_options(value):
    if valid_address(value):
        assert not SHELL & set(value.strip("[]")) and not value.startswith("-")


@FAST
@given(hostile, st.sampled_from(["ssh://", "ssh://wire@", "", "paramiko://u:p@"]))
def test_host_specs_give_a_safe_ssh_command_line(value, prefix):
    try:
        t = target_from_spec(prefix + value, ["x"])
    except TargetError:
        return
    if t.local:
        return
    argv = t.transport.argv_for("true")
    host = t.transport.host
    assert argv[-3:] == ["--", host, "true"]        # the host after "--": never read as an option
    assert valid_address(host) and not host.startswith("-")
    assert not [a for a in argv if "\n" in a]


blocked_key = st.sampled_from(sorted(COMMAND_OPTIONS))


@settings(max_examples=300, deadline=None)
@given(blocked_key, st.sampled_from(["", " ", "\t", "  \t"]), st.booleans(), st.sampled_from(["=", " ", "\t", " = "]),
       st.text(max_size=20), st.booleans(),
       st.lists(st.sampled_from([("-4",), ("-C",), ("-o", "UserKnownHostsFile=/x"), ("-oBatchMode=yes",)]), max_size=3))
def test_ssh_options_that_run_local_commands_are_refused_in_any_spelling(key, blank, quoted, sep, value, glued, noise):
    """ssh skips leading blanks and unquotes the keyword; the refusal must read it the same way."""
    spelled = "".join(c.upper() if i % 2 else c for i, c in enumerate(key))
    opt = blank + (f'"{spelled}"' if quoted else spelled) + sep + value
    args = [a for group in noise for a in group] + ([f"-o{opt}"] if glued else ["-o", opt])
    with pytest.raises(TargetError, match=f"ssh option {key} runs a local command"):
        safe_ssh_args(args, "host n1: ansible_ssh_common_args")


@FAST
@given(st.lists(hostile, max_size=6))
def test_ssh_args_refuse_or_keep_only_connection_options(args):
    try:
        kept = safe_ssh_args(args, "w")
    except TargetError as exc:
        assert str(exc).startswith("w: ")
        return
    it = iter(kept)
    for arg in it:
        assert arg.startswith("-"), kept
        if arg == "-o":
            ssh_reads = subprocess.run(["ssh", "-G", "-o", next(it), "h"], capture_output=True, text=True, timeout=10)
            assert "proxycommand" not in ssh_reads.stdout and "localcommand " not in ssh_reads.stdout


@FAST
@given(st.text())
def test_remote_file_parsers_take_any_text(text):
    assert isinstance(parse_os_release(text), dict)
    assert all(isinstance(v, int) for v in parse_meminfo(text).values())


# --- command building: values reach the command literally ----------------------------------------

@settings(max_examples=60, deadline=None)
@given(hostile.filter(lambda s: "\0" not in s))
def test_bounded_commands_pass_text_literally(value):
    res = LocalTransport().run(f"printf %s {shlex.quote(value)}", timeout=5)
    assert res.rc == 0 and res.stdout == value
    assert "timeout" in bounded(f"printf %s {shlex.quote(value)}", 5)


@settings(max_examples=40, deadline=None)
@given(hostile.filter(lambda s: "\0" not in s and s.strip()))
def test_facts_use_values_as_names_not_code(value):
    from wirecheck.targets import local_target
    t = local_target(["x"])
    for fact in (t.read_file, t.facts.which, t.facts.passwd_entry, t.facts.sysctl_persisted):
        try:       # a name that cannot be read (a directory, say) is an honest error, never code
            fact(value)
        except CannotMeasure as exc:
            assert exc.message.strip()


# --- inventories ----------------------------------------------------------------------------------

names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), min_size=1, max_size=20)


@settings(max_examples=30, deadline=None)
@given(st.dictionaries(names, st.dictionaries(st.sampled_from(
    ["ansible_host", "ansible_user", "ansible_port", "ansible_ssh_common_args", "target_domain", "ip",
     "ansible_connection"]), hostile, max_size=4), min_size=1, max_size=3))
def test_any_inventory_gives_targets_or_one_clear_error(tmp_path_factory, hosts):
    path = tmp_path_factory.mktemp("inv") / "hosts.yml"
    path.write_text(yaml.safe_dump({"wiab": {"hosts": hosts}}))
    try:
        inv = load_inventory(str(path))
        targets = targets_from_inventory(inv, "demo")
    except TargetError as exc:
        assert str(exc).strip() and "Traceback" not in str(exc)
        return
    for t in targets:
        if not t.local:
            assert valid_address(t.transport.host)
            assert t.transport.argv_for("true")[-3] == "--"


@pytest.mark.parametrize("raw, needle", [
    (b"wiab:\n  hosts:\n    n1:\n      ansible_host: 198.18.255.254\n  vars:\n    target_domain: caf\xe9\xff.test\n",
     "not a valid Ansible inventory"),
    (b"wiab:\n  hosts:\n    \"n1; touch /tmp/wc-owned1\":\n      ansible_host: 198.18.255.254\n"
     b"  vars:\n    target_domain: \"x.test\\ntouch /tmp/wc-owned2\"\n", "is not a valid domain name"),
    (b"wiab:\n  hosts:\n    n1:\n      ansible_host: 198.18.255.254\n      ansible_ssh_common_args: "
     b"'-o \" ProxyCommand\"=touch /tmp/wc-owned3'\n", "ssh option proxycommand runs a local command"),
    (b"wiab:\n  hosts:\n    n1:\n      ansible_host: 198.18.255.254\n      ansible_ssh_common_args: "
     b"'-o PKCS11Provider=/tmp/wc-owned4.so'\n", "ssh option pkcs11provider runs a local command"),
    (b"wiab:\n  hosts:\n    n1:\n      ansible_host: 198.18.255.254\n      ansible_port: '22; touch /tmp/wc-owned5'\n",
     "is not a number"),
])
def test_hostile_inventory_files_end_in_one_line(tmp_path, raw, needle):
    inv = tmp_path / "host.yml"
    inv.write_bytes(raw)
    run = run_suite(["--ansible-inventory", str(inv)], tmp_path / "r")
    out = (run.stdout + run.stderr).strip()
    assert run.rc == 4 and needle in out and "Traceback" not in out, out
    assert len(out.splitlines()) == 1, out


@pytest.mark.parametrize("args, needle", [
    (["--hosts", "ssh://wire@host;touch /tmp/wc-owned1"], "is not a host name or IP address"),
    (["--hosts", "ssh://$(touch${IFS}x)@h.test"], "is not a valid user name"),
    (["--param", "DEMO-SYS-CPU.min_cores`touch /tmp/wc-owned4`=1"], "expected ID.NAME=VALUE"),
    (["--domain", "wire.test\ntouch /tmp/wc-owned5"], "is not a valid domain name"),
])
def test_hostile_options_end_in_one_line(tmp_path, args, needle):
    run = run_suite(args, tmp_path / "r")
    out = (run.stdout + run.stderr).strip()
    assert run.rc == 4 and needle in out and "Traceback" not in out, out


# --- whole runs with hostile values where wirecheck takes them as data ----------------------------

# Checks that still crash (an uncaught exception, reported as `error: check crashed`) on a hostile
# inventory value.  Not a security problem (nothing runs) but not "one clear line" either; the owners
# of these checks are told in the report.  Shrinks to empty as they are fixed.
KNOWN_CRASHES: set[str] = set()   # no check may crash on hostile inventory values


@pytest.fixture(scope="module")
def target_host(lab_module):
    return lab_module.add_host("node1", user="wire", sudo=True)


@pytest.mark.parametrize("profile", ["demo", "production"])
def test_hostile_inventory_values_run_as_data(target_host, tmp_path, profile):
    h = target_host
    p = PAYLOADS
    hv = {"cassandra_network_interface": "eth0" + p[0], "minikube_node_subnet": p[1], "pod_network_cidr": p[2],
          "ip": p[3], "physical_host": p[4], "elasticsearch_network_interface": p[5], "kube_version": "1.29" + p[6],
          "wirecheck_offline_artifact": "/opt/x.tgz" + p[7], "tls_cert_file": "/etc/x.pem" + p[8]}
    inv = tmp_path / "hosts.yml"
    h.lab.inventory_yaml(inv, vars={"target_domain": "wire.example.test", "wire_ip": "198.18.255.254",
                                    "teams_enabled": p[2], "tls_key_file": p[0]},
                         host_vars={"node1": hv}, group="cassandra", hosts=[h])
    run = run_suite(["--ansible-inventory", str(inv), "--profile", profile, "-k", "not port",
                     "--dns-timeout", "0.2", "--dns-tries", "1", "--connect-timeout", "3"], tmp_path / "r")
    results = [(q["id"], x) for q in run.compliance["requirements"] for x in q["results"]]
    assert results and run.compliance["complete"] is True
    crashed = {rid for rid, x in results if "check crashed" in x["message"]}
    assert crashed <= KNOWN_CRASHES, crashed
    # the hostile path is quoted back as a name, not run
    assert any("x.pem$'\\x3b' touch /tmp/wc-owned9" in x["message"] for rid, x in results if rid == "TLS-BYO-CERT")
    on_host = h.exec(f"ls -d {MARK}* /home/{h.user}/wc-owned* 2>/dev/null; true").stdout
    assert not on_host.strip(), on_host


def test_hostile_remote_output_is_data(lab, tmp_path):
    """A target whose files hold binary, non-UTF-8 and huge content: checks give verdicts, no crash."""
    garbage = bytes(range(256)) * 64
    h = lab.add_host("deploy_node", user="wire", sudo=True, files={
        "/etc/os-release": b"ID=\xff\xfe$(touch /tmp/wc-owned1)\nVERSION_ID=\"`touch /tmp/wc-owned2`\"\n" + garbage,
        "/etc/resolv.conf": b"nameserver \xff\xfe\nnameserver ;touch /tmp/wc-owned3\n" + garbage * 200,
    })
    from tests.support.wc import host_args
    run = run_suite([*host_args(h), "-k", "not port", "--dns-timeout", "0.2", "--dns-tries", "1"], tmp_path / "r")
    os_check = run.result("DEMO-SYS-OS")
    assert os_check["status"] == "fail" and "$(touch `touch /tmp/wc-owned2`" in os_check["message"]
    crashed = [x["message"] for q in run.compliance["requirements"] for x in q["results"] if "crashed" in x["message"]]
    assert not crashed, crashed
    assert not h.exec(f"ls -d {MARK}* 2>/dev/null; true").stdout.strip()
    Path(tmp_path / "r" / "compliance.json").read_text(encoding="utf-8")   # valid UTF-8 JSON


def test_ssh_args_that_change_the_connection_are_left_out():
    """What Ansible inventories set for Ansible's sake (connection sharing, agent forwarding) and what
    would change the session (forwardings, a TTY, no stdin) is dropped; connection settings stay."""
    args = ["-o", "ControlMaster=auto", "-o", "ControlPersist=60s", "-oControlPath=/tmp/x", "-A", "-o",
            "ForwardAgent=yes", "-L", "8080:localhost:80"]
    with pytest.raises(TargetError, match="unsupported ssh argument '-L'"):
        safe_ssh_args(args, "w")
    kept = safe_ssh_args(args[:-2] + ["-o", "LocalForward=8080 localhost:80", "-tN4C", "-o", "RequestTTY=yes",
                                      "-o", "StrictHostKeyChecking=yes", "-J", "bastion", "-p", "2222"], "w")
    assert kept == ["-4C", "-o", "StrictHostKeyChecking=yes", "-J", "bastion", "-p", "2222"]


def test_ssh_config_file_from_the_inventory_is_refused():
    with pytest.raises(TargetError, match=r"ssh config file \(-F\) can run local commands.*--ssh-config"):
        safe_ssh_args(["-F", "/home/op/.ssh/wire.conf"], "host n1: ansible_ssh_common_args")
