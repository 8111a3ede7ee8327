"""Read-only proof: a full preflight changes nothing on its target.

A lab host with a firewall ruleset, sysctls and files of its own is recorded before and after a whole
preflight run: processes, listening sockets, files under /tmp, /var/tmp, /dev/shm and the login
user's home and the top of root's (with their contents' hashes), the iptables and nftables rulesets and every
sysctl.  Values that change on an idle host (counters, entropy, timers) are found by recording twice
before the run and left out.  What the run declares as its own (its SSH sessions and the port probe's
temporary listener) must be gone when it ends, so the two records must be equal.
"""

from __future__ import annotations

from tests.faults.helpers import host_processes, our_ssh_processes
from tests.support.wc import host_args, run_suite
from wirecheck.catalog import default_catalog

STATE = r"""
echo '## listening'; ss -H -lntu | awk '{print $1, $5}' | sort
echo '## files'; { find /tmp /var/tmp /dev/shm /home -xdev; find /root -xdev -maxdepth 2; } 2>/dev/null \
    | while IFS= read -r p; do stat -c '%n %F %a %U %s' -- "$p"; done | sort
find /tmp /var/tmp /dev/shm /home -xdev -type f -size -10M -exec sha256sum {} + 2>/dev/null | sort
echo '## iptables'; iptables-save | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]//'
echo '## ip6tables'; ip6tables-save | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]//'
echo '## nft'; nft list ruleset
echo '## sysctl'; sysctl -a 2>/dev/null | sort
"""


def record(h) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    section = ""
    for line in h.exec(STATE, timeout=60).stdout.splitlines():
        if line.startswith("## "):
            section = line[3:]
            out[section] = set()
        elif section:
            out[section].add(line.strip())
    # processes in the host's network namespace, minus the lab's own sshd and its sessions
    out["processes"] = {c for c in host_processes(h).values() if "sshd" not in c}
    return out


KNOWN_VOLATILE_SYSCTLS = {"fs.file-nr", "fs.inode-nr", "fs.inode-state", "fs.dentry-state",
                          "kernel.random.entropy_avail", "kernel.random.uuid", "kernel.ns_last_pid",
                          "fs.aio-nr", "kernel.pty.nr"}


def volatile(a: dict[str, set[str]], b: dict[str, set[str]]) -> dict[str, set[str]]:
    """Keys (the part before ' = ' for sysctls, the whole line elsewhere) that differ on an idle host."""
    def keys(lines: set[str]) -> set[str]:
        return {line.split(" = ")[0] for line in lines}
    return {s: keys(a[s] ^ b[s]) for s in a}


def stable(state: dict[str, set[str]], skip: dict[str, set[str]]) -> dict[str, set[str]]:
    return {s: {line for line in lines if line.split(" = ")[0] not in skip.get(s, set())} for s, lines in state.items()}


def test_full_preflight_leaves_the_target_as_it_was(lab, tmp_path):
    h = lab.add_host(
        "deploy_node", user="wire", sudo=True,
        files={"/home/wire/notes.txt": "operator's file\n", "/tmp/work/keep.me": "x" * 100},
        sysctls={"net.ipv4.ip_forward": "1"},
        setup=["iptables -A INPUT -p tcp --dport 9999 -j ACCEPT", "nft add table inet operator",
               "nft add chain inet operator input '{ type filter hook input priority 10; }'"],
    )
    first = record(h)
    second = record(h)
    skip = volatile(first, second)
    # machine-wide counters that move with whatever else runs on the machine (hosts share the kernel)
    skip["sysctl"] = skip.get("sysctl", set()) | KNOWN_VOLATILE_SYSCTLS
    args = [*host_args(h), "--dns-timeout", "0.3", "--dns-tries", "1", "--domain", "wire.example.test",
            "--wire-ip", h.address]
    if "udp_range" in default_catalog()["NET-PORT-UDP-RANGE"].params:      # the probe can be kept small
        args += ["--param", "NET-PORT-UDP-RANGE.udp_range=40000-40063",
                 "--param", "DEMO-NET-FIREWALL.udp_range=40000-40063"]
    else:                                    # a full 32768-65535 probe costs over a minute: left out here
        args += ["-k", "not port"]
    run = run_suite(args, tmp_path / "r")
    c = run.compliance
    measured = [r for q in c["requirements"] for r in q["results"] if r["target"] == h.address
                and r["status"] in ("pass", "fail", "warn")]
    assert len(measured) >= 15, [r["message"] for q in c["requirements"] for r in q["results"]][:20]
    assert run.result("DEMO-NET-IP-FORWARD")["status"] == "pass"     # it read the host it was given
    after = record(h)
    before, after = stable(second, skip), stable(after, skip)
    changed = {s: {"gone": sorted(before[s] - after[s]), "new": sorted(after[s] - before[s])}
               for s in before if before[s] != after[s]}
    assert not changed, changed
    assert "/home/wire/notes.txt" in " ".join(after["files"]) and any("dport 9999" in x for x in after["iptables"])
    assert not our_ssh_processes(h.address)
    # and the record does see a change of each kind a run could make
    h.exec("touch /tmp/left-behind; sysctl -qw net.ipv4.ip_forward=0; iptables -I INPUT -j DROP -p udp --dport 9")
    touched = stable(record(h), skip)
    assert {s for s in before if before[s] != touched[s]} >= {"files", "sysctl", "iptables"}
