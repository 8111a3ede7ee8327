"""Production: wire-server-deploy's Ansible playbooks for the VMs and cluster, then the Helm charts,
in the order the docs give (ansible-VMs.md, helm-prod.md; offline: offline/docs_ubuntu_22.04.md).

Playbooks for optional components run only when the inventory has their group ([restund],
[postgresql], [minio]); charts run only when the checkout ships them under charts/ (offline bundle)
unless `chart_repo` (e.g. "wire") is given, then `<repo>/<chart>` is used.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from provisioners import ProvisionContext, Provisioner, ProvisionError, Step

# (playbook, inventory group required or None, doc section)
PLAYBOOKS: list[tuple[str, str | None, str]] = [
    ("ansible/setup-offline-sources.yml", "assethost", "offline › Preparing the asset host"),
    ("ansible/kubernetes.yml", None, "ansible-VMs.md › Installing kubernetes"),
    ("ansible/cassandra.yml", "cassandra", "ansible-VMs.md › Cassandra"),
    ("ansible/elasticsearch.yml", "elasticsearch", "ansible-VMs.md › ElasticSearch"),
    ("ansible/minio.yml", "minio", "ansible-VMs.md › Minio"),
    ("ansible/postgresql-deploy.yml", "postgresql", "offline › PostgreSQL"),
    ("ansible/restund.yml", "restund", "ansible-VMs.md › Restund"),
    ("ansible/helm_external.yml", None, "ansible-VMs.md › Preparing helm values for external services"),
]

# (release, chart, namespace) in install order (helm-prod.md / offline docs)
CHARTS: list[tuple[str, str, str]] = [
    ("cassandra-external", "cassandra-external", "default"),
    ("elasticsearch-external", "elasticsearch-external", "default"),
    ("minio-external", "minio-external", "default"),
    ("postgresql-external", "postgresql-external", "default"),
    ("fake-aws", "fake-aws", "default"),
    ("demo-smtp", "demo-smtp", "default"),
    ("rabbitmq", "rabbitmq", "default"),
    ("databases-ephemeral", "databases-ephemeral", "default"),
    ("reaper", "reaper", "default"),
    ("wire-server", "wire-server", "default"),
    ("ingress-nginx-controller", "ingress-nginx-controller", "default"),
    ("nginx-ingress-services", "nginx-ingress-services", "default"),
    ("webapp", "webapp", "default"),
    ("account-pages", "account-pages", "default"),
    ("team-settings", "team-settings", "default"),
    ("sftd", "sftd", "default"),
    ("coturn", "coturn", "default"),
]


def inventory_groups(path: Path) -> set[str]:
    """Group names of an INI or YAML inventory (enough to decide which playbooks apply)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yml", ".yaml"):
        groups: set[str] = set()

        def walk(node: object) -> None:
            if isinstance(node, dict):
                for name, body in (node.get("children") or {}).items():
                    groups.add(name)
                    walk(body)

        data = yaml.safe_load(text) or {}
        for top, body in data.items():
            groups.add(top)
            walk(body)
        return groups
    return {m.group(1).split(":")[0] for m in re.finditer(r"^\s*\[([^\]]+)\]", text, re.M)}


class ProductionProvisioner(Provisioner):
    name = "production"
    profile = "production"
    needs = ("inventory", "wire-server-deploy", "kubeconfig")
    description = "HA install: kubespray + VM playbooks, then Helm charts (docs: ansible-VMs.md, helm-prod.md)"

    def plan(self, ctx: ProvisionContext) -> list[Step]:
        self.check_inputs(ctx)
        assert ctx.inventory is not None
        groups = inventory_groups(ctx.inventory)
        steps: list[Step] = []
        for rel, group, doc in PLAYBOOKS:
            if group and group not in groups:
                continue
            playbook = ctx.wsd / rel
            if not playbook.is_file():
                raise ProvisionError(f"{playbook} not found: is {ctx.wsd} a wire-server-deploy checkout?")
            steps.append(Step(name=Path(rel).stem, kind="playbook", playbook=playbook, inventory=ctx.inventory,
                              cwd=ctx.wsd, tags=list(ctx.ansible.tags), skip_tags=list(ctx.ansible.skip_tags),
                              extra_vars=dict(ctx.ansible.extra_vars), doc=doc))
        repo = ctx.options.get("chart_repo")
        kubeconfig = ctx.options.get("kubeconfig")
        skip = set(ctx.options.get("skip_charts") or ())
        for release, chart, namespace in CHARTS:
            if release in skip:
                continue
            local = ctx.wsd / "charts" / chart
            if repo:
                chart_ref = f"{repo}/{chart}"
            elif local.is_dir():
                chart_ref = str(local)
            else:
                continue
            argv = ["helm", "upgrade", "--install", "--wait", "--timeout", str(ctx.options.get("helm_timeout", "15m")),
                    "--namespace", namespace, release, chart_ref]
            for values in ("values.yaml", "secrets.yaml"):
                vf = ctx.wsd / "values" / release / values
                if vf.is_file():
                    argv += ["--values", str(vf)]
            if kubeconfig:
                argv += ["--kubeconfig", str(kubeconfig)]
            steps.append(Step(name=f"helm {release}", kind="command", argv=argv, cwd=ctx.wsd,
                              doc="helm-prod.md"))
        if not steps:
            raise ProvisionError("nothing to do: no playbooks or charts found for this inventory and checkout")
        return steps
