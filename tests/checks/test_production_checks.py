"""Production topology at scale (issue 5): a wire-server-deploy style INI inventory over 17 namespace
test hosts with their own sshd. Some hosts are undersized, one sits on 10.x, one runs the wrong
Ubuntu release; the run must name exactly those, with observed vs required figures, and pass the rest.

What the hosts report is varied the way the lab allows: cores (fake_cpus: nproc and /proc/cpuinfo
report the figure), memory (a private /proc/meminfo), disks (tmpfs mounts of a given size, which df
shows), files (/etc/os-release, /etc/machine-id) and global sysctls (private proc files).
"""

from __future__ import annotations

import re
import select
import subprocess
from pathlib import Path

import pytest
import yaml

from suites.preflight import test_production as prod
from tests.support.wc import run_suite

GIB_KIB = 1024 * 1024
JAMMY = ('PRETTY_NAME="Ubuntu 22.04.4 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\n'
         'VERSION="22.04.4 LTS (Jammy Jellyfish)"\nVERSION_CODENAME=jammy\nID=ubuntu\nID_LIKE=debian\n')
BIONIC = ('PRETTY_NAME="Ubuntu 18.04.6 LTS"\nNAME="Ubuntu"\nVERSION_ID="18.04"\n'
          'VERSION="18.04.6 LTS (Bionic Beaver)"\nVERSION_CODENAME=bionic\nID=ubuntu\nID_LIKE=debian\n')
# (cores, GiB as the table says, data path, disk); MemTotal is reported 4 % below the nominal size,
# as on a real VM (kernel reservations)
SIZES = {"kubenode": (6, 8, "/var/lib/containerd", "40G"), "cassandra": (2, 4, "/var/lib/cassandra", "80G"),
         "elasticsearch": (1, 2, "/var/lib/elasticsearch", "60G"), "minio": (1, 2, "/var/lib/minio", "400G"),
         "restund": (1, 2, None, None), "postgresql": (1, 2, "/var/lib/postgresql", "50G"),
         "assethost": (1, 4, "/opt/assets", "100G"), "admin": (1, 4, None, None)}
NAMES = (["kubenode1", "kubenode2", "kubenode3", "cassandra1", "cassandra2", "cassandra3", "elasticsearch1",
          "elasticsearch2", "elasticsearch3", "minio1", "minio2", "minio3", "restund1", "restund2", "postgresql1",
          "assethost", "admin"])
# the deliberate defects
UNDERSIZED = {"cassandra2": {"cores": 1, "mem": 2}, "minio3": {"disk": "200G"}, "kubenode3": {"mem": 6}}
ON_10NET = "elasticsearch2"
WRONG_RELEASE = "restund2"


def kind(name: str) -> str:
    return name.rstrip("0123456789")


def spec_for(i: int, name: str) -> dict:
    cores, gib, path, disk = SIZES[kind(name)]
    bad = UNDERSIZED.get(name, {})
    files = {"/etc/os-release": BIONIC if name == WRONG_RELEASE else JAMMY,
             "/etc/machine-id": f"{i + 1:032x}\n"}
    if kind(name) == "assethost":
        files.update({"/opt/assets/debs-jammy/public/gpg": "key\n", "/opt/assets/binaries/README": "bin\n"})
    spec = {"name": name, "user": "wire", "sudo": True, "fake_cpus": bad.get("cores", cores),
            "meminfo_kib": int(bad.get("mem", gib) * GIB_KIB * 0.96), "files": files,
            "sysctls": {"net.ipv4.ip_forward": "1"}}
    if path:
        spec["tmpfs"] = {path: bad.get("disk", disk)}
    if kind(name) == "cassandra":
        spec["sysctls"]["vm.max_map_count"] = "1048575"
    if kind(name) == "elasticsearch":
        spec["sysctls"]["vm.max_map_count"] = "262144"
    if name == ON_10NET:
        spec["extra_addresses"] = ["10.9.8.7/24"]
    return spec


def write_inventory(lab, hosts, path, *, physical: bool = True, extra_groups: dict | None = None,
                    all_vars: dict | None = None, placement: dict | None = None, aliases: dict | None = None):
    """The layout of wire-server-deploy's ansible/inventory/offline/99-static (plus postgresql, admin)."""
    by = {h.name: h for h in hosts}

    def g(*names):
        return [by.get(n, n) for n in names]
    groups = {
        "kube-master": g("kubenode1", "kubenode2", "kubenode3"),
        "etcd": g("kubenode1", "kubenode2", "kubenode3"),
        "kube-node": g("kubenode1", "kubenode2", "kubenode3"),
        "cassandra": g("cassandra1", "cassandra2", "cassandra3"), "cassandra_seed": g("cassandra1"),
        "elasticsearch": g("elasticsearch1", "elasticsearch2", "elasticsearch3"),
        "minio": g("minio1", "minio2", "minio3"), "restund": g("restund1", "restund2"),
        "postgresql": g("postgresql1"), "assethost": g("assethost"), "admin": g("admin"),
        **(extra_groups or {}),
    }
    lab.inventory_ini(path, groups, vars={"target_domain": "wire.example.test", **(all_vars or {})},
                      group_vars={"cassandra": {"cassandra_network_interface": "eth0"},
                                  "elasticsearch": {"elasticsearch_network_interface": "eth0"},
                                  "minio": {"minio_network_interface": "eth0"}}, hosts=hosts,
                      aliases=aliases)
    text = path.read_text().replace("[kube-node]", "[k8s-cluster:children]\nkube-master\nkube-node\n\n[kube-node]", 1)
    text = text.replace("[elasticsearch]", "[elasticsearch_master:children]\nelasticsearch\n\n[elasticsearch]", 1)
    if physical:   # three servers, each group spread over them
        lines = []
        for line in text.splitlines():
            name = line.split(" ", 1)[0]
            if name in by and " ansible_host=" in line:
                n = int(name[-1]) if name[-1].isdigit() else 1
                line += f" physical_host={(placement or {}).get(name, f'server{(n - 1) % 3 + 1}')}"
            lines.append(line)
        text = "\n".join(lines) + "\n"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def fleet(lab_module):
    hosts = lab_module.add_hosts([spec_for(i, n) for i, n in enumerate(NAMES)])
    asset = lab_module.host("assethost")
    server = asset.popen(["python3", "-m", "http.server", "8080", "--bind", "0.0.0.0", "--directory", "/opt/assets"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(50):
        if asset.exec("python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 8080), 1)'",
                      check=False).returncode == 0:
            break
        select.select([], [], [], 0.1)
    yield hosts
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="module")
def fleet_run(fleet, lab_module, tmp_path_factory):
    """The production suite over the 17 hosts with two xdist workers (-n 2: -n auto runs in one
    process); beside the report, the SSH logins each host's sshd accepted during the run and every
    command wirecheck ran (WIRECHECK_COMMAND_LOG)."""
    tmp = tmp_path_factory.mktemp("fleet")
    inv = write_inventory(lab_module, fleet, tmp / "hosts.ini")
    before = {h.name: h.logins() for h in fleet}
    run = run_suite(["--ansible-inventory", str(inv), "-n", "2", "-vv"], tmp / "report",
                    suite="suites/preflight/test_production.py",
                    env={"WIRECHECK_COMMAND_LOG": str(tmp / "commands.log")})
    run.logins = {h.name: h.logins() - before[h.name] for h in fleet}
    run.commands = (tmp / "commands.log").read_text().splitlines()
    return run


def results(run, rid):
    return {x["target"]: x for x in run.requirement(rid)["results"]}


SIZE_IDS = {"kubenode": "PROD-VM-KUBERNETES", "cassandra": "PROD-VM-CASSANDRA", "elasticsearch": "PROD-VM-ELASTICSEARCH",
            "minio": "PROD-VM-MINIO", "restund": "PROD-VM-RESTUND", "postgresql": "PROD-VM-POSTGRESQL",
            "assethost": "PROD-VM-ASSET", "admin": "PROD-VM-ADMIN"}
HOST_IDS = ["PROD-OS", "PROD-NET-AVOID-10NET", "PROD-NET-STATIC-IP", "PROD-NET-IFACES", "PROD-NET-PRIVATE",
            "PROD-GPG", "IMP-SWAP-OFF", "IMP-KMOD-SYSCTL", "IMP-ES-LIMITS", "IMP-CASSANDRA-LIMITS", "IMP-ARCH-PROD",
            *SIZE_IDS.values()]


def test_run_names_exactly_the_broken_hosts(fleet_run):
    run = fleet_run
    assert "INTERNALERROR" not in run.stdout + run.stderr, run.stdout[-3000:]
    assert run.compliance["profile"] == "production"
    broken = {}
    for rid in HOST_IDS:
        for target, r in results(run, rid).items():
            if r["status"] not in ("pass", "not_applicable"):
                broken.setdefault(target, {})[rid] = r["status"]
    assert broken == {
        "cassandra2": {"PROD-VM-CASSANDRA": "fail"},
        "minio3": {"PROD-VM-MINIO": "fail"},
        "kubenode3": {"PROD-VM-KUBERNETES": "fail"},
        ON_10NET: {"PROD-NET-AVOID-10NET": "warn"},
        WRONG_RELEASE: {"PROD-OS": "fail"},
    }, run.stdout[-4000:]
    # every host got its sizing check, the admin host included
    for name in NAMES:
        assert results(run, SIZE_IDS[kind(name)])[name]["status"] in ("pass", "fail")


def test_undersized_hosts_show_observed_and_required(fleet_run):
    cass = results(fleet_run, "PROD-VM-CASSANDRA")["cassandra2"]["message"]
    assert "CPU cores for cassandra: 1, need >= 2;" in cass and cass.endswith("(nproc; /proc/meminfo MemTotal; df -B1)")
    assert ("memory: 1.91 GiB MemTotal (2,013,265 KiB), need 4 GiB for cassandra (MemTotal >= 3,900,703 KiB = "
            "3.72 GiB with the 7% kernel allowance)") in cass
    assert "disk" not in cass.split("(nproc)")[-1]            # the disk is fine: not named
    minio = results(fleet_run, "PROD-VM-MINIO")["minio3"]
    assert ("disk: file system /var/lib/minio holding minio /var/lib/minio is 200.0 GiB (214,748,364,800 bytes), "
            "need 400 GiB (>= 408,021,893,120 bytes = 380.0 GiB with the 5% file-system allowance)") in minio["message"]
    assert minio["evidence"]["filesystems"]["/var/lib/minio"]["size_GiB"] == 200.0
    assert minio["evidence"]["filesystems"]["/var/lib/minio"]["size_bytes"] == 200 * 1024**3
    kube = results(fleet_run, "PROD-VM-KUBERNETES")["kubenode3"]["message"]
    assert "memory: 5.75 GiB MemTotal (6,039,797 KiB), need 8 GiB for kubernetes" in kube and "CPU" not in kube
    ok = results(fleet_run, "PROD-VM-CASSANDRA")["cassandra1"]
    assert ok["status"] == "pass" and "GiB" in ok["evidence"]["units"]
    assert "memory: 4,026,531 KiB (need >= 4 GiB for cassandra (MemTotal >= 3,900,703 KiB))" in ok["message"]
    # every host is its own machine here: identified by its machine-id, nothing merged
    assert ok["evidence"]["machine"]["names"] == ["cassandra1"]
    assert ok["evidence"]["machine"]["identified_by"].startswith("machine-id ")
    assert "merged_names" not in ok["evidence"]


def test_10net_and_release_named(fleet_run):
    ten = results(fleet_run, "PROD-NET-AVOID-10NET")[ON_10NET]
    assert "10.9.8.7/24 is in 10.0.0.0/8" in ten["message"] and "no overlap" in ten["message"]
    rel = results(fleet_run, "PROD-OS")[WRONG_RELEASE]
    assert "Ubuntu 18.04.6 LTS (ID=ubuntu, VERSION_ID=18.04), need ubuntu 22.04" in rel["message"]
    assert "past its end of standard support (2023-05-31)" in rel["message"]
    assert rel["evidence"]["accepted_from"].startswith("catalog default")


def test_fleet_checks_pass_on_the_good_topology(fleet_run):
    count = fleet_run.result("PROD-VM-COUNT")      # info level: a warning naming the short group only
    assert count["status"] == "warn" and "[postgresql] has 1, need 3" in count["message"]
    assert count["message"].count(" has ") == 1
    assert count["evidence"]["per_group"]["cassandra"] == 3 and count["evidence"]["hosts"] == 17
    for rid in ("PROD-PHYS-SERVERS", "PROD-HOSTS-DISJOINT", "IMP-HOSTNAME-UNIQUE", "IMP-SSH-HOSTKEYS",
                "PROD-NET-DB-PORTS"):
        r = fleet_run.result(rid)
        assert r["status"] == "pass", (rid, r["message"])
    db = fleet_run.result("PROD-NET-DB-PORTS")
    # 3 kube nodes x (3 cassandra x 2 + 3 es x 2 + 3 minio + 1 postgresql) + peers 3x2x(1+1+1)
    assert db["evidence"]["connections"] == 3 * (6 + 6 + 3 + 1) + 18 == db["evidence"]["open"]
    # the wrong release asks the assethost for debs-bionic, which the bundle does not have
    asset = fleet_run.result("PROD-NET-ASSETHOST")
    assert asset["status"] == "fail" and "restund2: http://" in asset["message"] and "debs-bionic" in asset["message"]
    assert asset["message"].count("→") == 1


def test_what_a_namespace_cannot_show_is_not_a_pass(fleet_run):
    # no NTP client runs in a test host: an error naming what was tried, never a pass
    for name in NAMES:
        r = results(fleet_run, "TIME-NTP-SYNC")[name]
        assert r["status"] == "error" and "no time-synchronisation client answered" in r["message"]
    # docker client without daemon, no helm on the admin host: real failures
    assert fleet_run.result("CTRL-DOCKER")["status"] == "fail"
    assert fleet_run.status("IMP-ADMIN-DISK") == "not_evaluated"


def test_one_connection_and_one_snapshot_per_host_across_workers(fleet, fleet_run):
    """Under xdist the workers share the controller's SSH master per host and the snapshot it took:
    whichever worker runs a host's checks, and the fleet checks that touch every host, the host's sshd
    sees exactly one login and the snapshot command runs on it once."""
    assert fleet_run.logins == {h.name: 1 for h in fleet}, fleet_run.logins
    snapshots = {}
    for line in fleet_run.commands:
        where, command = line.split("\t")[:2]
        if "@@%s" in command and "s meminfo" in command:
            snapshots[where] = snapshots.get(where, 0) + 1
    assert snapshots == {f"ssh wire@{h.address}:{h.port}": 1 for h in fleet}, snapshots
    # each host's check commands in one batch, run once for both workers (coordination.once)
    batches: dict[str, int] = {}
    for line in fleet_run.commands:
        where, command = line.split("\t")[:2]
        if command.startswith("set -- ") and "@@wc-batch-end" in command:
            batches[where] = batches.get(where, 0) + 1
    assert batches == {f"ssh wire@{h.address}:{h.port}": 1 for h in fleet}, batches
    alone = [line.split("\t")[1] for line in fleet_run.commands if line.split("\t")[1] in ("id -un", "sudo id -u")]
    assert alone == [], alone       # answered from the batch


def test_each_host_on_one_worker(fleet, fleet_run):
    """Every check of a host runs on the same xdist worker (xdist's own loadgroup loses its groups on
    pytest 9.2; wirecheck's scheduler must not)."""
    workers: dict[str, set[str]] = {}
    for m in re.finditer(r"^\[(gw\d+)\] .*::\w+\[([\w-]+)\]\s*$", fleet_run.stdout, re.M):
        workers.setdefault(m.group(2), set()).add(m.group(1))
    assert set(workers) == {h.name for h in fleet}, fleet_run.stdout[-2000:]
    assert all(len(w) == 1 for w in workers.values()), workers


def test_serial_run_agrees(fleet, fleet_run, lab_module, tmp_path):
    """-n auto runs in one process (no xdist worker: the per-host waiting runs in threads) and judges
    every host as the two workers did."""
    inv = write_inventory(lab_module, fleet, tmp_path / "hosts.ini")
    serial = run_suite(["--ansible-inventory", str(inv), "-n", "auto", "-v"], tmp_path / "r",
                       suite="suites/preflight/test_production.py")
    assert "[gw0]" not in serial.stdout and "bringing up nodes" not in serial.stdout

    def statuses(run):
        return {(r["id"], x["target"]): x["status"] for r in run.compliance["requirements"] for x in r["results"]}
    assert statuses(serial) == statuses(fleet_run)


def staging_layout(ini: Path, root: Path) -> Path:
    """The same hosts and groups in the layout of wire-server-deploy's ansible/inventory/offline/staging.yml
    (commit 682349dc): YAML, the login user in all.vars, kube-master / etcd / k8s-cluster /
    elasticsearch_master as children of other groups, per-group vars in the groups, and beside it
    group_vars/all/offline.yml building ansible_ssh_common_args from a Jinja template over groups['all']
    (as Wire's does for a bastion) and group_vars/postgresql/. Our own file in that shape, not Wire's."""
    from wirecheck.inventory import load_inventory

    inv = load_inventory(str(ini))
    host_keys = ("ansible_host", "ansible_port", "ansible_ssh_private_key_file", "physical_host")
    hosts = {name: {k: hv[k] for k in host_keys if k in hv} for name, hv in inv.hosts.items()}
    first = next(iter(inv.hosts.values()))
    children = {"kube-master": ["kube-node"], "etcd": ["kube-node"], "k8s-cluster": ["kube-node", "kube-master"],
                "elasticsearch_master": ["elasticsearch"]}
    group_vars = {"cassandra": {"cassandra_network_interface": "eth0"},
                  "elasticsearch": {"elasticsearch_network_interface": "eth0"},
                  "minio": {"minio_network_interface": "eth0"}}
    doc: dict = {"all": {"vars": {"ansible_user": first["ansible_user"], "target_domain": "wire.example.test"}}}
    for group, members in inv.groups.items():
        if group in ("all", "ungrouped") or group == "postgresql":
            continue
        if group in children:
            doc[group] = {"children": {c: {} for c in children[group]}}
        else:
            doc[group] = {"hosts": {m: hosts[m] for m in members}}
        if group in group_vars:
            doc[group]["vars"] = group_vars[group]
    doc["postgresql"] = {"hosts": {m: hosts[m] for m in inv.groups["postgresql"]}}
    (root / "group_vars" / "all").mkdir(parents=True)
    (root / "group_vars" / "postgresql").mkdir(parents=True)
    (root / "group_vars" / "all" / "offline.yml").write_text(yaml.safe_dump({
        "ansible_ssh_common_args": "{% if 'bastion' in groups['all'] %}-o ProxyJump=bastion {% endif %}"
                                   + first["ansible_ssh_common_args"]}))
    (root / "group_vars" / "postgresql" / "postgresql.yml").write_text(yaml.safe_dump({
        "repmgr_namespace": "wire", "postgresql_version": 17}))
    path = root / "staging.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert {g: sorted(m) for g, m in load_inventory(str(path)).groups.items()} == \
        {g: sorted(m) for g, m in inv.groups.items()}
    return path


def test_staging_yml_layout_agrees_with_the_ini_layout(fleet, fleet_run, lab_module, tmp_path):
    """Wire's offline inventories come as INI (99-static) and as YAML with group_vars/ (staging.yml): the
    same machines in either layout get the same verdicts."""
    ini = write_inventory(lab_module, fleet, tmp_path / "hosts.ini")
    staging = staging_layout(ini, tmp_path / "offline")
    run = run_suite(["--ansible-inventory", str(staging), "-n", "auto"], tmp_path / "r",
                    suite="suites/preflight/test_production.py")

    def statuses(run):
        return {(r["id"], x["target"]): x["status"] for r in run.compliance["requirements"] for x in r["results"]}
    assert run.compliance["site"]["inventory_kind"] == "production"
    assert statuses(run) == statuses(fleet_run)


def test_bad_topology_fails_the_fleet_checks(fleet, lab_module, tmp_path):
    by = {h.name: h for h in fleet}
    # cassandra3 also a kube node (renamed by two playbooks); no physical map; too few minio
    inv = write_inventory(lab_module, fleet, tmp_path / "hosts.ini", physical=False,
                          extra_groups={"kube-node": [by["kubenode1"], by["kubenode2"], by["kubenode3"],
                                                      by["cassandra3"]],
                                        "minio": [by["minio1"]]},
                          all_vars={"kube_pods_subnet": "10.9.0.0/16"})
    run = run_suite(["--ansible-inventory", str(inv), "-n", "2", "-k",
                     "renaming or count or physical or 10net or vm_size_cassandra"], tmp_path / "r",
                    suite="suites/preflight/test_production.py")
    dis = run.result("PROD-HOSTS-DISJOINT")
    assert dis["status"] == "fail" and f"cassandra and kubernetes playbooks both rename {by['cassandra3'].address}" \
        in dis["message"]
    assert run.status("PROD-PHYS-SERVERS") == "not_evaluated"
    assert "physical_host=<server>" in run.result("PROD-PHYS-SERVERS")["message"]
    count = run.result("PROD-VM-COUNT")
    assert count["status"] == "warn" and "[minio] has 1, need 3" in count["message"]
    # kube_pods_subnet set to 10.9.0.0/16: the 10.x host now collides with the cluster: fail, not warn
    ten = results(run, "PROD-NET-AVOID-10NET")[ON_10NET]
    assert ten["status"] == "fail" and "10.9.8.7/24 on extra0 overlaps kube_pods_subnet 10.9.0.0/16" in ten["message"]
    # cassandra3 is now cassandra + kubernetes: held to the sum of both rows
    c3 = results(run, "PROD-VM-CASSANDRA")["cassandra3"]
    assert c3["status"] == "fail" and "CPU cores for cassandra+kubernetes: 2, need >= 8" in c3["message"]
    assert "sum" in c3["evidence"]["colocation_rule"]


def test_one_machine_under_two_names_is_held_to_both_roles(fleet, lab_module, tmp_path):
    """Issue 12: cassandra1 (2 cores, 3.84 GiB) listed again as `es3` in [elasticsearch] and as `cas1b`
    in [cassandra]. By names both sizing checks passed and [cassandra] counted three; by machines
    the one machine carries cassandra+elasticsearch (3 cores, 6 GiB: it fails under both names) and
    [cassandra] has two machines."""
    by = {h.name: h for h in fleet}
    inv = write_inventory(lab_module, fleet, tmp_path / "hosts.ini", aliases={"es3": by["cassandra1"],
                                                                             "cas1b": by["cassandra1"],
                                                                             "kube1b": by["kubenode1"]},
                          extra_groups={"cassandra": ["cassandra1", "cassandra2", "cas1b"],
                                        "elasticsearch": ["elasticsearch1", "elasticsearch2", "es3"],
                                        "kube-node": ["kubenode1", "kubenode2", "kube1b"]})
    run = run_suite(["--ansible-inventory", str(inv), "-n", "2", "-k",
                     "vm_size_cassandra or vm_size_elasticsearch or vm_count or inventory_worker_nodes"],
                    tmp_path / "r")
    assert "INTERNALERROR" not in run.stdout + run.stderr, run.stdout[-3000:]
    for rid, name in (("PROD-VM-CASSANDRA", "cassandra1"), ("PROD-VM-CASSANDRA", "cas1b"),
                      ("PROD-VM-ELASTICSEARCH", "es3")):
        r = results(run, rid)[name]
        assert r["status"] == "fail", (rid, name, r["message"])
        assert "CPU cores for cassandra+elasticsearch: 2, need >= 3" in r["message"]
        assert "need 6 GiB for cassandra+elasticsearch (MemTotal >= 5,851,055 KiB" in r["message"]
        assert r["evidence"]["machine"]["names"] == ["cas1b", "cassandra1", "es3"]
        assert r["evidence"]["merged_names"].startswith("cas1b, cassandra1, es3 are one machine (machine-id ")
    # the others are their own machines and pass as before
    assert results(run, "PROD-VM-ELASTICSEARCH")["elasticsearch1"]["status"] == "pass"
    assert results(run, "PROD-VM-CASSANDRA")["cassandra2"]["status"] == "fail"       # undersized on its own
    count = run.result("PROD-VM-COUNT")
    assert count["status"] == "warn"
    assert "[cassandra] has 2 (3 names, some of them one machine), need 3" in count["message"]
    assert "[kube-node] has 2 (3 names, some of them one machine), need 3" in count["message"]
    assert "[elasticsearch]" not in count["message"]          # three machines, one of them also cassandra
    assert count["evidence"]["per_group"]["cassandra"] == 2 and count["evidence"]["inventory_names"] == 20
    assert count["evidence"]["hosts"] == 17
    workers = run.result("K8S-WORKERS")
    assert workers["status"] == "fail" and workers["observed"] == "[kube-node] has 2 host(s): kube1b = kubenode1, kubenode2"
    assert list(workers["evidence"]["merged_names"].values()) == [["kube1b", "kubenode1"]]


def test_machine_id_unreadable_falls_back_to_the_address(lab_module, tmp_path):
    """A host without a machine-id is told apart by its address and port, and the evidence says so;
    the same address under two names is still one machine."""
    h = lab_module.add_host("noid", files={"/etc/os-release": JAMMY, "/etc/machine-id": ""}, fake_cpus=1,
                            meminfo_kib=4 * GIB_KIB)
    inv = lab_module.inventory_ini(tmp_path / "hosts.ini", {"kube-node": [h, "noid-b"]}, hosts=[h],
                                   aliases={"noid-b": h})
    run = run_suite(["--ansible-inventory", str(inv), "-k", "inventory_worker_nodes or vm_size_kubernetes"],
                    tmp_path / "r")
    workers = run.result("K8S-WORKERS")
    assert workers["status"] == "fail" and workers["observed"] == "[kube-node] has 1 host(s): noid = noid-b"
    how = workers["evidence"]["identified_by"]["noid = noid-b"]
    assert how == f"address {h.address}:{h.port} (machine-id not read: /etc/machine-id is empty or missing)"
    size = results(run, "PROD-VM-KUBERNETES")["noid-b"]
    assert size["status"] == "fail" and size["evidence"]["machine"]["identified_by"] == how


def test_sizing_floor_exactly_and_a_few_mib_under(lab_module, tmp_path):
    """The table's 4 GiB less the catalog's 7 % is 3,900,702.72 KiB; 80 GiB less 5 % is 81,604,378,624
    bytes. At the floor passes; 3 MiB (shown as 3.72 GiB when rounded) or one page under fails."""
    floor_disk = 80 * 1024**3 * 95 // 100
    ok, low = lab_module.add_hosts([
        {"name": "floorok", "files": {"/etc/os-release": JAMMY}, "fake_cpus": 2, "meminfo_kib": 3_900_703,
         "tmpfs": {"/var/lib/cassandra": str(floor_disk)}},
        {"name": "floorlow", "files": {"/etc/os-release": JAMMY}, "fake_cpus": 2, "meminfo_kib": 3_900_702 - 3 * 1024,
         "tmpfs": {"/var/lib/cassandra": str(floor_disk - 4096)}},
    ])
    inv = lab_module.inventory_ini(tmp_path / "hosts.ini", {"cassandra": [ok, low]}, hosts=[ok, low])
    run = run_suite(["--ansible-inventory", str(inv), "-k", "vm_size_cassandra"], tmp_path / "r")
    got = results(run, "PROD-VM-CASSANDRA")
    assert got["floorok"]["status"] == "pass", got["floorok"]["message"]
    assert got["floorlow"]["status"] == "fail"
    assert ("memory: 3.71 GiB MemTotal (3,897,630 KiB), need 4 GiB for cassandra (MemTotal >= 3,900,703 KiB = "
            "3.72 GiB with the 7% kernel allowance)") in got["floorlow"]["message"]
    assert (f"is 75.9 GiB ({floor_disk - 4096:,} bytes), need 80 GiB (>= {floor_disk:,} bytes = 76.0 GiB with the 5% "
            "file-system allowance)") in got["floorlow"]["message"]
    assert "CPU" not in got["floorlow"]["message"]


def test_physical_servers_shared(fleet, lab_module, tmp_path):
    inv = write_inventory(lab_module, fleet, tmp_path / "hosts.ini", placement={"cassandra2": "server1"},
                          all_vars={"wirecheck_offline_artifact": "/etc/os-release"})
    run = run_suite(["--ansible-inventory", str(inv), "-k", "physical or admin_disk"], tmp_path / "r",
                    suite="suites/preflight/test_production.py")
    r = run.result("PROD-PHYS-SERVERS")
    assert r["status"] == "fail" and "[cassandra] cassandra1, cassandra2 share server server1" in r["message"]
    # the artifact's size read on the [admin] host; three times a few hundred bytes fit anywhere
    disk = run.result("IMP-ADMIN-DISK")
    assert disk["status"] == "pass" and disk["evidence"]["admin_machine"] == "the [admin] host admin"
    assert disk["evidence"]["artifact_from"] == "size of /etc/os-release" and disk["evidence"]["path"] == "/etc"


# --- hosts with one defect each, for the checks the 17-host fleet passes -----------------------------------

SWAPS = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/swapfile                               file\t\t2097148\t\t0\t\t-2\n"
PUBLIC = "100.128.0.7"      # a globally routed address, on an unrouted dummy device: classified, never contacted
DYNAMIC = ("a=$(ip -4 -o addr show dev eth0 | awk '{print $4}') && "
           "ip addr change \"$a\" dev eth0 valid_lft 3600 preferred_lft 3600")


@pytest.fixture(scope="module")
def odd(lab_module):
    return lab_module.add_hosts([
        {"name": "odd1", "files": {"/etc/os-release": JAMMY, "/proc/swaps": SWAPS, "/etc/machine-id": "a" * 32 + "\n"},
         "sysctls": {"net.ipv4.ip_forward": "0"}, "setup": [DYNAMIC, "rm -f /usr/bin/gpg"]},
        {"name": "odd2", "files": {"/etc/os-release": BIONIC, "/etc/machine-id": "a" * 32 + "\n"},
         "extra_addresses": [f"{PUBLIC}/32"]},
    ])


@pytest.fixture(scope="module")
def odd_run(odd, lab_module, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("odd")
    o1, o2 = odd
    inv = lab_module.inventory_ini(
        tmp / "hosts.ini", {"kube-node": [o1], "cassandra": [o1], "elasticsearch": [o2]},
        vars={"wirecheck_os_releases": "18.04,22.04"}, group_vars={"cassandra": {"cassandra_network_interface": "ens3"}},
        hosts=odd)
    lines = []
    for line in inv.read_text().splitlines():
        if line.startswith("odd2 "):   # the shipped demo settings: host keys neither pinned nor checked
            line = line.replace("StrictHostKeyChecking=yes", "StrictHostKeyChecking=no")
            line = re.sub(r"UserKnownHostsFile=\S+?(?=[ '\"])", "UserKnownHostsFile=/dev/null", line)
            line += f" ip={PUBLIC}"
        lines.append(line)
    inv.write_text("\n".join(lines) + "\n")
    # no fleet check that opens connections: odd2's ip= is a public address
    return run_suite(["--ansible-inventory", str(inv), "--param", "IMP-ARCH-PROD.arch=arm64",
                      "--param", "PROD-VM-ADMIN.cores=64", "--param", "IMP-ADMIN-DISK.artifact_gib=1000000", "-k",
                      "not database_ports and not assethost and not renaming"], tmp / "r",
                     suite="suites/preflight/test_production.py")


def test_odd_hosts_fail_where_broken(odd_run):
    r = odd_run
    assert "INTERNALERROR" not in r.stdout + r.stderr, r.stdout[-3000:]
    swap = results(r, "IMP-SWAP-OFF")["odd1"]
    assert swap["status"] == "warn" and "swap is on: /swapfile (file, 2047 MiB)" in swap["message"]
    gpg = results(r, "PROD-GPG")
    assert gpg["odd1"]["status"] == "fail" and "gpg is not installed" in gpg["odd1"]["message"]
    assert gpg["odd2"]["status"] == "pass"
    static = results(r, "PROD-NET-STATIC-IP")
    assert static["odd1"]["status"] == "fail" and "on eth0 is a dynamic lease (valid_lft" in static["odd1"]["message"]
    assert static["odd2"]["status"] == "pass"        # ip= is on the host, permanent
    kmod = results(r, "IMP-KMOD-SYSCTL")["odd1"]
    assert kmod["status"] == "warn" and "net.ipv4.ip_forward: 0, need 1" in kmod["message"]
    ifaces = results(r, "PROD-NET-IFACES")
    assert "cassandra_network_interface=ens3: no such interface on the host" in ifaces["odd1"]["message"]
    assert "elasticsearch_network_interface is not set in the inventory" in ifaces["odd2"]["message"]
    priv = results(r, "PROD-NET-PRIVATE")
    assert priv["odd2"]["status"] == "warn" and PUBLIC in priv["odd2"]["message"]
    assert priv["odd1"]["status"] == "pass"
    lim = results(r, "IMP-CASSANDRA-LIMITS")["odd1"]
    assert lim["status"] == "warn" and "vm.max_map_count" in lim["message"] and "active swap" in lim["message"]
    arch = results(r, "IMP-ARCH-PROD")["odd1"]
    assert (arch["status"], arch["observed"], arch["expected"]) == ("warn", "amd64", "arm64")   # a SHOULD


def test_odd_fleet_checks(odd_run):
    keys = odd_run.result("IMP-SSH-HOSTKEYS")
    assert keys["status"] == "warn"
    assert "odd2: StrictHostKeyChecking=false" in keys["message"] or "odd2: StrictHostKeyChecking=no" in keys["message"]
    assert "odd2: host key not in any known_hosts file" in keys["message"] and "odd1" not in keys["message"]
    uniq = odd_run.result("IMP-HOSTNAME-UNIQUE")
    assert uniq["status"] == "warn" and f"machine_id {'a' * 32!r} shared by odd1, odd2" in uniq["message"]


def test_os_releases_are_a_site_setting(odd_run):
    os2 = results(odd_run, "PROD-OS")["odd2"]
    assert os2["status"] == "pass" and os2["evidence"]["accepted_from"] == "inventory wirecheck_os_releases"
    assert os2["evidence"]["end_of_standard_support"] == "Ubuntu 18.04: standard support ended 2023-05-31"


def test_admin_disk_too_small_for_the_artifact(odd_run):
    r = odd_run.result("IMP-ADMIN-DISK")
    assert r["status"] == "warn" and r["target"] == "control"
    assert "need >= 3,000,000.00 GiB (3,221,225,472,000,000 bytes: 3 x the artifact)" in r["message"]
    assert r["evidence"]["need_bytes"] == 3 * 1_000_000 * 1024**3
    assert r["evidence"]["admin_machine"] == "the control machine"


def test_control_machine_is_the_admin_host_without_admin_group(odd_run, fleet_run):
    admin = [x for x in odd_run.requirement("PROD-VM-ADMIN")["results"] if x["target"] == "control"][0]
    assert admin["status"] == "fail" and "CPU cores for admin: " in admin["message"] and "need >= 64" in admin["message"]
    in_fleet = [x for x in fleet_run.requirement("PROD-VM-ADMIN")["results"] if x["target"] == "control"][0]
    assert in_fleet["status"] == "not_applicable" and "[admin] host" in in_fleet["message"]


def test_blocked_database_port_is_named(fleet, lab_module, tmp_path):
    c1 = lab_module.host("cassandra1")
    rule = "INPUT -p tcp --dport 9042 -j DROP"
    c1.exec(f"iptables -I {rule}")
    try:
        inv = write_inventory(lab_module, fleet, tmp_path / "hosts.ini")
        run = run_suite(["--ansible-inventory", str(inv), "-k", "database_ports"], tmp_path / "r",
                        suite="suites/preflight/test_production.py")
    finally:
        c1.exec(f"iptables -D {rule}")
    r = run.result("PROD-NET-DB-PORTS")
    assert r["status"] == "fail" and r["message"].count("timed out") == 3
    assert f"kubenode1 → cassandra1 ({c1.address}:9042): timed out" in r["message"]
    assert "3 of 66 connections fail" in r["message"]


LISTEN = "import socket,sys,time\nss=[]\nfor p in sys.argv[1:]:\n s=socket.socket(); s.bind(('0.0.0.0',int(p))); " \
         "s.listen(8); ss.append(s)\nprint('up',flush=True)\nsys.stdin.read()\n"


def test_acceptance_internode_ports_and_ntpd(fleet, lab_module, tmp_path):
    # stand-ins for kube-apiserver, etcd and kubelet: plain listeners on kubenode1 and kubenode2 only
    procs = []
    try:
        for name in ("kubenode1", "kubenode2"):
            p = lab_module.host(name).popen(["python3", "-c", LISTEN, "6443", "2379", "2380", "10250"],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            assert p.stdout.readline().strip() == b"up"
            procs.append(p)
        inv = write_inventory(lab_module, fleet, tmp_path / "hosts.ini")
        run = run_suite(["--ansible-inventory", str(inv), "-k", "internode or ntpd"], tmp_path / "r",
                        suite="suites/acceptance/test_production.py")
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(timeout=10)
    r = run.result("K8S-INTERNODE-PORTS")
    assert r["status"] == "warn" and "8 of 24 connections fail" in r["message"]
    assert "kubenode1 → kubenode3" in r["message"] and "kubenode3 → kubenode1" not in r["message"]
    assert "Connection refused" in r["message"]
    ntp = results(run, "TIME-CASSANDRA-NTPD")
    assert set(ntp) == {"cassandra1", "cassandra2", "cassandra3"}
    for x in ntp.values():
        assert x["status"] == "fail" and "ntpd is not running (running: no time daemon)" in x["message"]
        # one kernel clock for all test hosts: whatever is measured lies within the measuring uncertainty
        ev = x["evidence"]
        assert ev["clock_offset_to_control_ms"] <= ev["uncertainty_ms"] + 5 and "clock offset" not in x["message"]


# --- the judging code on recorded tool output (both ways) -----------------------------------------------------

CHRONY_OK = ("Reference ID    : C0A80001 (192.168.0.1)\nStratum         : 3\nSystem time     : 0.000012345 seconds "
             "fast of NTP time\nLeap status     : Normal\n")
CHRONY_BAD = "Reference ID    : 00000000 ()\nStratum         : 0\nSystem time     : 0.000000000 seconds slow of NTP time\n" \
             "Leap status     : Not synchronised\n"
NTPQ_OK = ("     remote           refid      st t when poll reach   delay   offset  jitter\n"
           "==============================================================================\n"
           " 0.ubuntu.pool.ntp.org .POOL.  16 p    -   64    0    0.000   +0.000   0.000\n"
           "*192.0.2.10      .GPS.            1 u   33   64  377    0.512   -0.213   0.044\n")


@pytest.mark.parametrize("text, synced, source", [
    ("no\n@rc=0\nbash: chronyc: command not found\n@rc=127\nbash: ntpq: command not found\n@rc=127\n", False,
     "timedatectl show -p NTPSynchronized"),
    ("yes\n@rc=0\nx\n@rc=127\nx\n@rc=127\n", True, "timedatectl show -p NTPSynchronized"),
    ("Failed to connect to bus\n@rc=1\n" + CHRONY_OK + "@rc=0\nx\n@rc=127\n", True, "chronyc tracking"),
    ("Failed to connect to bus\n@rc=1\n" + CHRONY_BAD + "@rc=0\nx\n@rc=127\n", False, "chronyc tracking"),
    ("Failed\n@rc=1\nx\n@rc=127\n" + NTPQ_OK + "@rc=0\n", True, "ntpq -pn"),
    ("Failed\n@rc=1\nx\n@rc=127\n" + NTPQ_OK.replace("*192", " 192") + "@rc=0\n", False, "ntpq -pn"),
])
def test_judge_time(text, synced, source):
    j = prod.judge_time(text)
    assert (j["synced"], j["source"]) == (synced, source)


@pytest.mark.parametrize("clients, synced, source, asked", [
    ({"chronyc": (CHRONY_OK, 0), "ntpq": (NTPQ_OK, 0), "timedatectl": ("no", 0)}, True, "chronyc tracking", ["chronyc"]),
    ({"chronyc": (CHRONY_BAD, 0), "timedatectl": ("yes", 0)}, False, "chronyc tracking", ["chronyc"]),
    ({"chronyc": ("506 Cannot talk to daemon", 1), "ntpq": (NTPQ_OK, 0), "timedatectl": ("no", 0)}, True, "ntpq -pn",
     ["chronyc", "ntpq"]),
    ({"ntpq": ("ntpq: read: Connection refused", 1), "timedatectl": ("no", 0)}, False,
     "timedatectl show -p NTPSynchronized", ["ntpq", "timedatectl"]),
    ({}, None, None, []),
])
def test_the_time_command_asks_only_what_the_judge_reads(tmp_path, clients, synced, source, asked):
    """TIME_CMD against stand-in clients on PATH (what each prints and its exit status; a missing one
    is not on PATH): the verdict is the one asking all three gives, and a client whose answer the judge
    would not read is not asked (timedatectl's D-Bus call when chronyc answered)."""
    import os
    import shlex
    bindir, log = tmp_path / "bin", tmp_path / "asked"
    bindir.mkdir()
    os.symlink("/bin/grep", bindir / "grep")
    for name, (text, rc) in clients.items():
        (bindir / name).write_text(f"#!/bin/sh\necho {name} >> {log}\nprintf '%s\\n' {shlex.quote(text)}\nexit {rc}\n")
        (bindir / name).chmod(0o755)
    res = subprocess.run(["/bin/sh", "-c", prod.TIME_CMD], env={"PATH": str(bindir)}, capture_output=True, text=True)
    j = prod.judge_time(res.stdout)
    assert (j["synced"], j["source"]) == (synced, source), res.stdout
    assert (log.read_text().split() if log.exists() else []) == asked
    every = "".join(f"{clients.get(n, ('not found', 127))[0]}\n@rc={clients.get(n, ('', 127))[1]}\n"
                    for n in ("timedatectl", "chronyc", "ntpq"))
    assert (prod.judge_time(every)["synced"], prod.judge_time(every)["source"]) == (synced, source)
    if synced is None:
        assert sorted(j["detail"]) == ["chronyc", "ntpq", "timedatectl"] and "not found" in j["detail"]["chronyc"]


def test_judge_time_nothing_answers():
    j = prod.judge_time("System has not been booted with systemd\n@rc=1\nnot found\n@rc=127\nnot found\n@rc=127\n")
    assert j["synced"] is None and j["detail"]["timedatectl"].startswith("System has not been booted")


def test_judge_time_offset():
    assert prod.judge_time("x\n@rc=1\n" + CHRONY_OK + "@rc=0\nx\n@rc=127\n")["offset_ms"] == pytest.approx(0.012345)
    assert prod.judge_time("x\n@rc=1\nx\n@rc=127\n" + NTPQ_OK + "@rc=0\n")["offset_ms"] == pytest.approx(0.213)


@pytest.mark.parametrize("out, rc, ok, what", [
    ("24.0.7 24.0.7\n", 0, True, "Docker 24.0.7"),
    ("20.10.14 20.10.14\n", 0, True, "Docker 20.10.14"),
    ("20.10.13 20.10.5\n", 0, False, "Docker 20.10.5, need >= 20.10.14"),
    ("24.0.7 Cannot connect to the Docker daemon at unix:///var/run/docker.sock.\n", 1, False,
     "the docker daemon does not answer"),
    ("sh: 1: docker: not found\n", 127, False, "docker is not installed"),
])
def test_judge_docker(out, rc, ok, what):
    got_ok, got = prod.judge_docker(out, rc, "20.10.14")
    assert got_ok is ok and got.startswith(what)


def test_judge_helm_kubectl():
    assert prod.judge_helm_kubectl("v3.14.2+gc309b6f\n", 0, "{}", 0, 3) == []
    assert prod.judge_helm_kubectl("v2.17.0+ga690bad\n", 0, "{}", 0, 3) == ["helm v2.17.0+ga690bad, need v3"]
    assert prod.judge_helm_kubectl("", 127, "", 127, 3) == ["helm is not installed", "kubectl is not installed"]


def test_judge_ntpd():
    from suites.acceptance.test_production import judge_ntpd
    good = "run ntpd\n@ntpq\n" + NTPQ_OK + "@rc=0\n@clock\n1.0\n"
    assert judge_ntpd(good, ["ntpd", "ntpsec"])["problems"] == []
    chrony = "run chronyd\n@ntpq\nntpq: not found\n@rc=127\n@clock\n1.0\n"
    assert judge_ntpd(chrony, ["ntpd"])["problems"] == [
        "ntpd is not running (running: chronyd)", "chronyd runs beside/instead of ntpd (the docs: ntpd and nothing else)"]
    unreached = "run ntpd\n@ntpq\n" + NTPQ_OK.replace("*192", " 192") + "@rc=0\n"
    assert judge_ntpd(unreached, ["ntpd"])["problems"] == ["ntpq -pn shows no selected (*) peer with non-zero reach"]


def test_dhcp_interfaces_from_netplan():
    lines = ["/etc/netplan/50-cloud-init.yaml:3:    ethernets:", "/etc/netplan/50-cloud-init.yaml:4:        ens3:",
             "/etc/netplan/50-cloud-init.yaml:5:            dhcp4: true", "/etc/netplan/50-cloud-init.yaml:7:        ens4:",
             "/etc/netplan/50-cloud-init.yaml:8:            dhcp4: false"]
    assert prod._dhcp_ifaces(lines) == {"ens3"}


def test_private_classification():
    assert all(prod.is_private(a) for a in ("10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "fd00::1",
                                            "198.18.0.5"))
    assert not any(prod.is_private(a) for a in ("100.128.0.7", "8.8.8.8", "2a00:1450::1", "127.0.0.1"))
