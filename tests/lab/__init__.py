"""Real test hosts (network + mount namespaces with their own sshd) for wirecheck's self-tests.

    from tests.lab import Lab

    with Lab() as lab:
        h = lab.add_host("node1", user="wire", sudo=True, cpus=1)
        h.ssh("nproc")            # over real SSH as the login user
        h.exec("iptables -S")     # as root inside the host, from the runner
"""

from tests.lab.core import (
    Lab,
    LabError,
    LabHost,
    LabUnavailable,
    cleanup_stale,
    lab_unavailable_reason,
)

__all__ = ["Lab", "LabError", "LabHost", "LabUnavailable", "cleanup_stale", "lab_unavailable_reason"]
