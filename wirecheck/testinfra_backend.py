"""testinfra's modules (host.package, host.service, host.file, ...) over wirecheck's own targets.

A site pack's checks can take the ``host`` fixture as they would with testinfra; its commands go
through the target's transport (one SSH master per host, wirecheck's time limits and command log),
so the run still makes one login per host.  Transport failures (unreachable, time limit) raise, and
the plugin turns them into ``error``: testinfra's modules never see them as "not installed".
"""

from __future__ import annotations

from typing import Any

import testinfra.host
from testinfra.backend.base import BaseBackend


class WirecheckBackend(BaseBackend):
    NAME = "wirecheck"

    def __init__(self, target: Any, **kwargs: Any):
        self.target = target
        super().__init__(target.name, **kwargs)

    #: what get_sudo_command puts before a command for root: run() hands it to the target's own sudo
    ROOT = "@@wirecheck-as-root@@ "

    def get_sudo_command(self, command: str, sudo_user: str | None) -> str:
        # host.sudo(): root the way the target gains it (sudo -n, or sudo -S with the become password);
        # another user: testinfra's own `sudo -u` (started as root inside host.sudo())
        if sudo_user in (None, "root"):
            return self.ROOT + command
        return super().get_sudo_command(command, sudo_user)

    def run(self, command: str, *args: str, **kwargs: Any):
        cmd = self.get_command(command, *args)
        if cmd.startswith(self.ROOT):
            cmd = cmd[len(self.ROOT):]
            res = self.target.run(cmd, sudo=True)
        else:
            res = self.target.run(cmd)
        return self.result(res.rc, self.encode(cmd), res.stdout, res.stderr)

    def get_pytest_id(self) -> str:
        return self.target.name


def testinfra_host(target: Any) -> testinfra.host.Host:
    cached = getattr(target, "_testinfra_host", None)
    if cached is None:
        cached = testinfra.host.Host(WirecheckBackend(target))
        target._testinfra_host = cached
    return cached
