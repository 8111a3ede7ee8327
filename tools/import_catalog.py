"""Import the shared requirements catalog (Markdown) into wirecheck/catalog.yaml.

The Markdown catalog is the research input; wirecheck/catalog.yaml is the hand-edited source of
truth the framework reads (schema: wirecheck/catalog.schema.json).  Re-running this script
refreshes the text fields from the Markdown and keeps the hand-maintained fields (params, roles,
scope, docs URL overrides, the remediation of implicit requirements) already present in
catalog.yaml, and writes the same plain form a person writes: no YAML anchors, no empty fields.

    python tools/import_catalog.py ../shared/requirements-catalog.md
    python tools/import_catalog.py --rewrite      # re-write catalog.yaml in that form only
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

OUT = Path(__file__).resolve().parent.parent / "wirecheck" / "catalog.yaml"

# Source keys of the catalog's provenance table -> (document path, published URL or None).
DOCS = "https://docs.wire.com/latest/"
WSD = "https://github.com/wireapp/wire-server-deploy/blob/master/"
SOURCES = {
    "PLAN": ("wire-docs src/how-to/install/planning.md", DOCS + "how-to/install/planning.html"),
    "VMTAB": ("wire-docs src/how-to/install/includes/vm-table.md", DOCS + "how-to/install/planning.html"),
    "WIAB": ("wire-docs src/how-to/install/demo-wiab.md", DOCS + "how-to/install/demo-wiab.html"),
    "WIAB-OFF": ("wire-server-deploy offline/demo-wiab.md", WSD + "offline/demo-wiab.md"),
    "DNSINC": ("wire-docs src/how-to/install/includes/helm_dns-ingress-troubleshooting.inc.md", DOCS + "how-to/install/helm-prod.html"),
    "HELM": ("wire-docs src/how-to/install/helm-prod.md", DOCS + "how-to/install/helm-prod.html"),
    "AVM": ("wire-docs src/how-to/install/ansible-VMs.md", DOCS + "how-to/install/ansible-VMs.html"),
    "AUTH": ("wire-docs src/how-to/install/ansible-authentication.md", DOCS + "how-to/install/ansible-authentication.html"),
    "TINC": ("wire-docs src/how-to/install/ansible-tinc.md", DOCS + "how-to/install/ansible-tinc.html"),
    "DEPS": ("wire-docs src/how-to/install/dependencies.md", DOCS + "how-to/install/dependencies.html"),
    "VER": ("wire-docs src/how-to/install/version-requirements.md", DOCS + "how-to/install/version-requirements.html"),
    "PRODINTRO": ("wire-docs src/how-to/install/prod-intro.md", DOCS + "how-to/install/prod-intro.html"),
    "INGR": ("wire-docs src/how-to/install/ingress.md", DOCS + "how-to/install/ingress.html"),
    "TLS": ("wire-docs src/how-to/install/tls.md", DOCS + "how-to/install/tls.html"),
    "RESTUND-I": ("wire-docs src/how-to/install/restund.md", DOCS + "how-to/install/restund.html"),
    "POST": ("wire-docs src/how-to/install/post-install.md", DOCS + "how-to/install/post-install.html"),
    "SFT-I": ("wire-docs src/how-to/install/sft.md", DOCS + "how-to/install/sft.html"),
    "TRBL": ("wire-docs src/how-to/install/troubleshooting.md", DOCS + "how-to/install/troubleshooting.html"),
    "INFRA": ("wire-docs src/how-to/install/infrastructure-configuration.md", DOCS + "how-to/install/infrastructure-configuration.html"),
    "FEDCFG": ("wire-docs src/understand/configure-federation.md", DOCS + "understand/configure-federation.html"),
    "FEDB2B": ("wire-docs src/understand/federation/backend-communication.md", DOCS + "understand/federation/backend-communication.html"),
    "RESTUND-U": ("wire-docs src/understand/restund.md", DOCS + "understand/restund.html"),
    "SFT-U": ("wire-docs src/understand/sft.md", DOCS + "understand/sft.html"),
    "PORTS": ("wire-docs src/understand/notes/port-ranges.md", DOCS + "understand/notes/port-ranges.html"),
    "OVERVIEW": ("wire-docs src/understand/overview.md", DOCS + "understand/overview.html"),
    "HOSTYML": ("wire-server-deploy ansible/inventory/demo/host.yml", WSD + "ansible/inventory/demo/host.yml"),
    "DEPLOY": ("wire-server-deploy ansible/wiab-demo/deploy_wiab.yml", WSD + "ansible/wiab-demo/deploy_wiab.yml"),
    "VDNS": ("wire-server-deploy ansible/wiab-demo/verify_dns.yml", WSD + "ansible/wiab-demo/verify_dns.yml"),
    "VIP": ("wire-server-deploy ansible/wiab-demo/verify_wire_ip.yml", WSD + "ansible/wiab-demo/verify_wire_ip.yml"),
    "PKGS": ("wire-server-deploy ansible/wiab-demo/install_pkgs.yml", WSD + "ansible/wiab-demo/install_pkgs.yml"),
    "MK": ("wire-server-deploy ansible/wiab-demo/minikube_cluster.yml", WSD + "ansible/wiab-demo/minikube_cluster.yml"),
    "IPT": ("wire-server-deploy ansible/wiab-demo/iptables_rules.yml", WSD + "ansible/wiab-demo/iptables_rules.yml"),
    "HAIR": ("wire-server-deploy ansible/wiab-demo/hairpin_networking.yml", WSD + "ansible/wiab-demo/hairpin_networking.yml"),
    "HELMI": ("wire-server-deploy ansible/wiab-demo/helm_install.yml", WSD + "ansible/wiab-demo/helm_install.yml"),
    "VALS": ("wire-server-deploy ansible/wiab-demo/wire_values.yml", WSD + "ansible/wiab-demo/wire_values.yml"),
    "DL": ("wire-server-deploy ansible/wiab-demo/download_artifact.yml", WSD + "ansible/wiab-demo/download_artifact.yml"),
    "SSHK": ("wire-server-deploy ansible/wiab-demo/setup_ssh.yml", WSD + "ansible/wiab-demo/setup_ssh.yml"),
    "CLEAN": ("wire-server-deploy ansible/wiab-demo/clean_cluster.yml", WSD + "ansible/wiab-demo/clean_cluster.yml"),
    "SOS": ("wire-server-deploy ansible/setup-offline-sources.yml", WSD + "ansible/setup-offline-sources.yml"),
    "STATIC": ("wire-server-deploy ansible/inventory/offline/99-static", WSD + "ansible/inventory/offline/99-static"),
    "GV-ALL": ("wire-server-deploy ansible/inventory/offline/group_vars/all/offline.yml", WSD + "ansible/inventory/offline/group_vars/all/offline.yml"),
    "GV-PG": ("wire-server-deploy ansible/inventory/offline/group_vars/postgresql/postgresql.yml", WSD + "ansible/inventory/offline/group_vars/postgresql/postgresql.yml"),
    "OFF22": ("wire-server-deploy offline/docs_ubuntu_22.04.md", WSD + "offline/docs_ubuntu_22.04.md"),
    "COTURN": ("wire-server-deploy offline/coturn.md", WSD + "offline/coturn.md"),
    "IPTPROD": ("wire-server-deploy ansible/iptables.yml", WSD + "ansible/iptables.yml"),
    "K8SLOG": ("wire-server-deploy ansible/kubernetes_logging.yml", WSD + "ansible/kubernetes_logging.yml"),
    "NTPV": ("wire-server-deploy ansible/cassandra-verify-ntp.yml", WSD + "ansible/cassandra-verify-ntp.yml"),
    "SYNC": ("wire-server-deploy ansible/sync_time.yml", WSD + "ansible/sync_time.yml"),
    "NTPV-ROLE": ("wireapp/ansible-ntp-verify README.md", "https://github.com/wireapp/ansible-ntp-verify"),
    "AR": ("wireapp/ansible-restund defaults/main.yml, tasks/firewall.yml", "https://github.com/wireapp/ansible-restund"),
    "COTCHART": ("wire-server charts/coturn/templates/configmap-coturn-conf-template.yaml", "https://github.com/wireapp/wire-server/tree/develop/charts/coturn"),
    "LINT": ("wire-linter src/targets/**, ui/src/checkers/**", None),
}
# Section 4 is a table without titles; these are short titles for the report.
IMP_TITLES = {
    "IMP-TIME-DEMO": "clock synchronised on the deploy node (NTP, offset < 50 ms)",
    "IMP-SWAP-OFF": "swap off on Kubernetes, Cassandra and Elasticsearch hosts",
    "IMP-KMOD-SYSCTL": "Kubernetes kernel modules and sysctls (br_netfilter, overlay, forwarding)",
    "IMP-HOSTNAME-UNIQUE": "unique, resolvable host names and machine IDs",
    "IMP-RESOLVER": "upstream DNS works from every node",
    "IMP-CAA": "CAA records allow Let's Encrypt (cert-manager)",
    "IMP-AAAA": "no stale AAAA records for Wire names",
    "IMP-CERT-HORIZON": "supplied certificate valid for 30 more days at install time",
    "IMP-SMTP-EGRESS": "outbound SMTP possible and a PTR record for the sending IP",
    "IMP-ES-LIMITS": "Elasticsearch kernel and file limits",
    "IMP-CASSANDRA-LIMITS": "Cassandra kernel and file limits",
    "IMP-INOTIFY": "inotify limits high enough for dozens of pods",
    "IMP-APT-IDLE": "apt/dpkg idle (no lock held) before install",
    "IMP-HOST-PORTS": "nothing already listening on Wire's public ports; no old minikube profile",
    "IMP-MTU": "interface MTU fits encapsulating CNIs and UDP media",
    "IMP-ARCH-PROD": "amd64 on every production host",
    "IMP-ADMIN-DISK": "admin host has room for the offline artifact (x3)",
    "IMP-REBOOT": "the demo node recovers after a reboot",
    "IMP-SSH-HOSTKEYS": "target host keys pinned in known_hosts",
    "IMP-BACKUPS": "recent backups of Cassandra, MinIO and PostgreSQL",
}
PROFILES = {"demo": ["demo"], "prod": ["production"], "both": ["demo", "production"]}
PHASES = {"PRE": ["preflight"], "ACC": ["acceptance"], "PRE+ACC": ["preflight", "acceptance"]}
KEPT = ("params", "roles", "scope", "url")
#: kept for implicit requirements only: their fix is written by hand (the Markdown has none)
KEPT_IMPLICIT = ("remediation",)
LEVEL_PART = re.compile(r"^(MUST|SHOULD|INFO)\b\s*(?:\((.*)\))?\s*$")

HEAD = re.compile(r"^#### ([A-Z0-9-]+) — (.+)$")
META = re.compile(r"^\*(.+)\*$")
FIELD = re.compile(r"^- \*\*(Requirement|Source|Check|Fix):\*\* (.*)$")


def level_of(text: str) -> tuple[str, str]:
    """Map the catalog's level text to must/should/info plus the condition it carries.

    "MUST (when federation is enabled)" -> ("must", "when federation is enabled"); a text that gives
    the level per profile or per aspect ("MUST (demo) / INFO (prod, conflicting figures)") is kept
    whole as the condition ("differs by case: ..."), never cut at the first parenthesis; its level is the
    first one named (the checks judge the parts themselves)."""
    text = text.strip()
    parts = re.split(r"\s+/\s+", text)
    if len(parts) == 1:
        m = LEVEL_PART.match(text)
        if m:
            return m.group(1).lower(), (m.group(2) or "").strip()
    first = re.match(r"(MUST|SHOULD|INFO)\b", text)
    return (first.group(1).lower() if first else "must"), f"differs by case: {text}"


def plain(doc: dict) -> dict:
    """The hand-edited form: no empty condition, no dead fields."""
    for req in doc["requirements"].values():
        if not req.get("condition"):
            req.pop("condition", None)
        override = req.pop("remediation_override", None)
        if override:
            req["remediation"] = override
        if not req.get("params"):
            req.pop("params", None)
    return doc


class _PlainDumper(yaml.SafeDumper):
    """YAML as a person writes it: the same list twice is written twice, never as &id001/*id001."""

    def ignore_aliases(self, data) -> bool:
        return True


def dump(doc: dict) -> str:
    return yaml.dump(plain(doc), Dumper=_PlainDumper, sort_keys=False, allow_unicode=True, width=100)


def scope_of(where: str) -> str:
    w = where.upper()
    if w.startswith("HOST") or w.startswith("INV+HOST") or w.startswith("CTRL+HOST"):
        return "host"
    if w.startswith("CTRL"):
        return "control"
    if w.startswith("K8S"):
        return "cluster"
    if w.startswith("INV"):
        return "site"
    return "external"


def roles_of(where: str, profiles: list[str]) -> list[str]:
    groups = re.findall(r"\[([a-z0-9_-]+)\]", where)
    if groups:
        return groups
    if "control plane" in where:
        return ["kube-master"]
    if "admin host" in where:
        return ["admin"]
    if profiles == ["demo"]:
        return ["deploy_node"]
    return ["all"]


def source_of(text: str) -> dict:
    found = {}
    for k in SOURCES:
        m = re.search(r"(?<![A-Z-])" + re.escape(k) + r"(?![A-Z-])", text)
        if m:
            found[k] = m.start()
    keys = sorted(found, key=found.get)
    doc = SOURCES[keys[0]][0] if keys else ""
    first = next((k for k in keys if SOURCES[k][1]), None)
    url = SOURCES[first][1] if first else None
    section = ""
    m = re.search(r'"([^"]+)"', text)
    if m:
        section = m.group(1)
    return {"text": text, "keys": keys, "doc": doc, "section": section, "url": url}


def parse(md: str) -> dict:
    reqs: dict[str, dict] = {}
    area = ""
    cur: dict | None = None
    for line in md.splitlines():
        if line.startswith("### 1."):
            area = re.sub(r"^### 1\.\d+ ", "", line).strip()
            continue
        m = HEAD.match(line)
        if m:
            cur = {"title": m.group(2).strip(), "area": area}
            reqs[m.group(1)] = cur
            continue
        if cur is None:
            continue
        m = META.match(line)
        if m and "·" in line and "profiles" not in cur:
            parts = [p.strip() for p in m.group(1).split("·")]
            profile, phase, where, level, origin = parts[0], parts[1], parts[2], " · ".join(parts[3:-1]), parts[-1]
            cur["profiles"] = PROFILES[profile]
            cur["phases"] = PHASES[phase]
            cur["where"] = where
            cur["level"], cur["condition"] = level_of(level)
            cur["level_text"] = level
            cur["origin"] = [o.strip() for o in origin.split(",")]
            cur["scope"] = scope_of(where)
            cur["roles"] = roles_of(where, cur["profiles"])
            continue
        m = FIELD.match(line)
        if m:
            key = {"Requirement": "requirement", "Source": "source", "Check": "check", "Fix": "remediation"}[m.group(1)]
            cur[key] = source_of(m.group(2)) if key == "source" else m.group(2).strip()
    # Section 4: implicit requirements (a table, not in the docs).
    in4 = False
    for line in md.splitlines():
        if line.startswith("## 4."):
            in4 = True
            continue
        if not in4 or not line.startswith("| IMP-"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        rid, profile, where, what, why = cells
        phase, _, loc = where.partition(" / ")
        profiles = PROFILES[profile.split()[0]]
        reqs[rid] = {
            "title": IMP_TITLES.get(rid, what), "area": "Implicit requirements (not stated in the docs)",
            "profiles": profiles, "phases": PHASES[phase.strip()], "where": loc,
            "level": "should", "condition": "", "level_text": "SHOULD (not from the docs)",
            "origin": ["implicit"], "scope": scope_of(loc), "roles": roles_of(loc, profiles),
            "requirement": what, "check": what, "rationale": why,
            "remediation": f"bring the host in line: {what}",
            "source": {"text": "not stated in Wire's docs (catalog §4, implicit)", "keys": [],
                       "doc": "", "section": "", "url": None},
            "implicit": True,
        }
    return reqs


def main() -> None:
    if sys.argv[1:] == ["--rewrite"]:
        doc = yaml.safe_load(OUT.read_text(encoding="utf-8"))
        for req in doc["requirements"].values():
            if req.get("level_text"):
                req["level"], req["condition"] = level_of(req["level_text"])
        OUT.write_text(dump(doc), encoding="utf-8")
        print(f"{len(doc['requirements'])} requirements re-written to {OUT}")
        return
    md = Path(sys.argv[1]).read_text(encoding="utf-8")
    reqs = parse(md)
    old = yaml.safe_load(OUT.read_text()) if OUT.exists() else {}
    old_reqs = (old or {}).get("requirements", {})
    for rid, req in reqs.items():
        for key in KEPT + (KEPT_IMPLICIT if req.get("implicit") else ()):
            if key in old_reqs.get(rid, {}):
                if key == "url":
                    req["source"]["url"] = old_reqs[rid]["url"]
                else:
                    req[key] = old_reqs[rid][key]
        req.setdefault("params", {})
    doc = {"catalog_version": (old or {}).get("catalog_version", "2026.11.1"), "requirements": reqs}
    OUT.write_text(dump(doc), encoding="utf-8")
    print(f"{len(reqs)} requirements written to {OUT}")


if __name__ == "__main__":
    main()
