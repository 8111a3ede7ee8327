"""Pure readers of what a host prints, for Facts: /etc/os-release, /proc/meminfo, and the netfilter
snapshot (`nft -j list ruleset` and the iptables-save variants) as a firewall View. No I/O here:
Facts runs the commands (one SSH round trip) and hands their output to these.
"""

from __future__ import annotations

import json
import shlex

from .firewall import View


def parse_os_release(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        try:
            value = shlex.split(value)[0] if value else ""
        except (ValueError, IndexError):
            value = value.strip("\"'")
        out[key.strip()] = value
    return out


def parse_meminfo(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            out[key.strip()] = int(fields[0])
    return out


#: iptables-save variants read beside nft: the nft backend's (full options of xt matches) and the
#: legacy backend's (invisible to nft); a host with only `iptables-save` is sorted by `iptables -V`
SAVES = ("iptables-nft", "ip6tables-nft", "iptables-legacy", "ip6tables-legacy")
SAVES_SCRIPT = (
    "s nftchains; command -v nft >/dev/null && nft list chains 2>/dev/null; "
    "for v in " + " ".join(SAVES) + "; do s $v; if command -v $v-save >/dev/null; then "
    "$v-save 2>&1 || echo '@@fail'; else echo '@@absent'; fi; done; "
    "if ! command -v iptables-nft-save >/dev/null && ! command -v iptables-legacy-save >/dev/null && "
    "command -v iptables-save >/dev/null; then case \"$(iptables -V 2>&1)\" in *nf_tables*) s iptables-nft;; "
    "*) s iptables-legacy;; esac; iptables-save 2>&1 || echo '@@fail'; fi; ")


def view_from_parts(parts: dict[str, str], host: str) -> View:
    view = View(nft_chains=parts.get("nftchains"))
    nft = parts.get("nft", "")
    lines = [ln for ln in nft.splitlines() if ln.strip()]
    if lines and lines[-1] == "@@absent":
        view.nft = None
    elif lines and lines[-1] == "@@fail":
        view.nft_error = f"`nft -j list ruleset` failed on {host}: " + (" ".join(lines[:-1])[-300:] or "no output")
    else:
        # one line of JSON; anything else nft printed (warnings on stderr) stays out of it
        doc = next((ln for ln in reversed(lines) if ln.startswith("{")), "")
        try:
            view.nft = json.loads(doc or "null")
        except json.JSONDecodeError:
            view.nft_error = f"`nft -j list ruleset` on {host} printed no JSON: {nft.strip()[:200]!r}"
        if not isinstance(view.nft, dict) and view.nft_error is None:
            view.nft_error = f"`nft -j list ruleset` on {host} printed no ruleset"
            view.nft = None
    for name in SAVES:
        text = parts.get(name)
        if text is None:
            continue
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if lines and lines[-1] == "@@absent":
            continue
        if lines and lines[-1] == "@@fail":
            view.save_errors[name] = " ".join(lines[:-1])[-300:] or "failed without a message"
            continue
        view.saves[name] = text
    return view
