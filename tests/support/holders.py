"""A process on a lab host that holds ports as another service would (a socket the probe finds in use):
UDP ports bound on 0.0.0.0 and, optionally, one TCP listener. It prints "ok" once they are held and
keeps them until its stdin is closed."""

from __future__ import annotations


def port_holder(udp: range, tcp: int | None = None) -> list[str]:
    """The command line of a holder of `udp` (and TCP `tcp`), for LabHost.popen."""
    script = (
        "import socket,sys\n"
        f"u=[socket.socket(socket.AF_INET,socket.SOCK_DGRAM) for _ in range({len(udp)})]\n"
        f"[s.bind(('0.0.0.0',{udp.start}+i)) for i,s in enumerate(u)]\n"
    )
    if tcp is not None:
        script += (f"t=socket.socket();t.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
                   f"t.bind(('0.0.0.0',{tcp}));t.listen()\n")
    return ["python3", "-c", script + "print('ok',flush=True)\nsys.stdin.read()\n"]
