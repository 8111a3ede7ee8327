""""Could not read" is never "nothing found": real hosts where an input cannot be obtained.

- a NAT table written with native nft under iptables' names: `iptables -t nat -S PREROUTING` fails
  (iptables-nft: "chain `PREROUTING' in table `nat' is incompatible, use 'nft' tool"), so nothing
  can be said about rules an earlier install left: DEMO-NET-LOCAL-PORTS-FREE is an error naming that
  cause (it passed, its evidence saying "not readable"); with a root login the message says what
  failed, not that sudo is needed.
- a root login on a host whose sshd does not answer: HOST-SUDO is an error (it passed, "login user
  is root", without a single command having run).
- the same checks pass on the same hosts once the input can be read (each proven both ways).
"""

from __future__ import annotations

from tests.support.wc import host_args, run_suite

NFT_NAT = ["nft add table ip nat",
           "nft add chain ip nat PREROUTING '{ type nat hook prerouting priority -100; }'",
           "nft add rule ip nat PREROUTING tcp dport '{ 80, 443 }' counter dnat to 10.1.1.1"]
# DEMO-NET-LOCAL-PORTS-FREE alone, with a port probe of four UDP ports instead of 32,768
SMALL_PROBE = ["-k", "installer_ports_free", "--param", "NET-PORT-UDP-RANGE.udp_range=40000-40003"]


def root_args(host) -> list[str]:
    return ["--hosts", f"ssh://root@{host.address}:{host.port}", "--ssh-identity-file", host.key_path,
            f"--ssh-extra-args={host.ssh_extra_args}"]


def test_unreadable_nat_table_is_an_error_not_a_pass(lab, tmp_path):
    wire, root = lab.add_hosts([{"name": "natwire", "setup": NFT_NAT},
                                {"name": "natroot", "setup": NFT_NAT, "root_login": True}])
    for _h, args, name in ((wire, host_args(wire), "wire"), (root, root_args(root), "root")):
        run = run_suite([*args, *SMALL_PROBE], tmp_path / name)
        r = run.result("DEMO-NET-LOCAL-PORTS-FREE")
        assert r["status"] == "error", r
        assert "`iptables -t nat -S PREROUTING` failed" in r["message"], r["message"]
        assert "chain `PREROUTING' in table `nat' is incompatible, use 'nft' tool" in r["message"]
        assert run.rc != 0
    # with a root login the cause is iptables', and sudo is not mentioned
    assert "as root" in r["message"] and "sudo" not in r["message"]
    # the same hosts with the table gone: the rules can be read, and nothing is left: pass
    for h, args, name in ((wire, host_args(wire), "wire-fixed"), (root, root_args(root), "root-fixed")):
        h.exec("nft delete table ip nat")
        run = run_suite([*args, *SMALL_PROBE], tmp_path / name)
        r = run.result("DEMO-NET-LOCAL-PORTS-FREE")
        assert r["status"] == "pass", r["message"]
        assert r["evidence"]["iptables_nat"] == "iptables -t nat -S PREROUTING"
        assert "no Wire NAT rules left" in r["message"]


def test_leftover_wire_nat_rules_fail(lab, tmp_path):
    """The other way: rules of an earlier run in the readable NAT table are found and named."""
    h = lab.add_host("natleft", setup=["iptables -t nat -A PREROUTING -p tcp --dport 80 -j DNAT "
                                       "--to-destination 192.168.99.2:31772 -m comment --comment 'Wire Iptables Rules'"])
    run = run_suite([*host_args(h), *SMALL_PROBE], tmp_path)
    r = run.result("DEMO-NET-LOCAL-PORTS-FREE")
    assert r["status"] == "fail" and "1 'Wire Iptables Rules' NAT rules left from an earlier run" in r["message"]


def test_root_login_that_never_answered_is_not_sudo(lab, tmp_path):
    h = lab.add_host("rootmute", root_login=True)
    run = run_suite([*root_args(h), "-k", "sudo", "--connect-timeout", "2"], tmp_path / "up")
    up = run.result("HOST-SUDO")
    assert up["status"] == "pass" and up["method"] == "id -u", up
    assert up["message"] == f"HOST-SUDO on {h.address}: root without a password: the login user is root (`id -u` prints 0)"
    h.stop_sshd()
    run = run_suite([*root_args(h), "-k", "sudo", "--connect-timeout", "2"], tmp_path / "down")
    down = run.result("HOST-SUDO")
    assert down["status"] == "error", down
    assert "could not measure" in down["message"] and "cannot connect" in down["message"]
    assert run.rc != 0
