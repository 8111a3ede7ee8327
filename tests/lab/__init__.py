"""Real test hosts for wirecheck's self-tests: network + mount + UTS namespaces with their own sshd.

    from tests.lab import Lab

    with Lab() as lab:                                   # or the `lab` / `lab_module` fixtures
        h = lab.add_host(
            "deploy_node", user="wire", sudo=True,
            files={"/etc/os-release": "ID=ubuntu\\nVERSION_ID=\\"24.04\\"\\n"},
            sysctls={"net.ipv4.ip_forward": "1"},       # net.*: real, per netns; others: private proc file
            setup=["iptables -P INPUT DROP", "iptables -A INPUT -p tcp --dport 22 -j ACCEPT"],
            cpus=1, meminfo_kib=8_000_000, tmpfs={"/var/lib/docker": "300G"},
            extra_addresses=["10.9.8.7/24"],
        )
        h.ssh("nproc")                 # real SSH as the login user -> CompletedProcess
        h.exec("iptables -S")          # root inside the host (nsenter into its namespaces)
        h.hostspec, lab.ssh_config_path  # testinfra: --hosts=... --ssh-config=...
        lab.inventory_yaml(path, vars={"target_domain": "example.com"})

Many hosts at once (parallel start): ``lab.add_hosts([{"name": "n1", ...}, {"name": "n2"}])``.

What a host is:
- netns ``wcl<lab>h<n>`` on bridge ``wcl<lab>br`` (198.18.<lab>.1); host address 198.18.<lab>.<n>,
  no default route; extra addresses on an unrouted ``extra0`` device.
- its own hostname (UTS namespace) and /etc/hosts entry.
- file system: copy-on-write overlays over /etc, /var, /usr, /opt, /root, /srv (anything the host
  writes there, ufw state included, stays in the host); tmpfs /run, /home, /tmp, /dev/shm; ``files=`` are
  written into the overlays or bind-mounted (also over /proc and /sys files); ``tmpfs=`` mounts
  with a size (shown by df); ``private_dirs=`` adds more overlays.
- login user (not root) that exists only in the host, key auth with the lab's ed25519 key, host
  key pinned in the lab's known_hosts; NOPASSWD sudo when ``sudo=True``; PATH with sbin as on Ubuntu.
- stand-ins where the runner is too small: ``fake_cpus=16`` (nproc, /proc/cpuinfo, sysfs report 16),
  ``meminfo_kib=`` (private /proc/meminfo), global sysctls as private proc files.

Everything is torn down by close() / context exit / atexit; :func:`cleanup_stale` (run by every
new Lab) removes what a killed run left behind.
"""

from tests.lab.core import (
    DEFAULT_OVERLAYS,
    UBUNTU_PATH,
    FileContent,
    Lab,
    LabError,
    LabHost,
    LabUnavailable,
    cleanup_stale,
    lab_unavailable_reason,
)

__all__ = [
    "DEFAULT_OVERLAYS",
    "UBUNTU_PATH",
    "FileContent",
    "Lab",
    "LabError",
    "LabHost",
    "LabUnavailable",
    "cleanup_stale",
    "lab_unavailable_reason",
]
