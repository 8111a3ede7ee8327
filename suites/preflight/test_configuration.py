"""Chart values before install (helm-prod.md › How to install wire-server itself, SMTP, secrets;
configure-federation.md › Choose/Set your backend domain, CA certificates).

The values are read from the Helm values directory a site installs from: `--values-dir`, or the
wire-server-deploy checkout's `values/` (`--wire-server-deploy`). Each chart's `values.yaml` and
`secrets.yaml` are merged as `helm install -f values.yaml -f secrets.yaml` does. After install the
same judges run on the values of the deployed releases (suites/acceptance/test_federation.py,
test_calling.py).

This module also holds the helpers the acceptance suites share (loaded there by path).
"""

from __future__ import annotations

from pathlib import Path

from suites.preflight.test_kubernetes import conclude
from wirecheck import not_applicable, not_evaluated, record, requirement
from wirecheck.probes import k8s_config as kc


def has_values_files(site) -> bool:
    return bool(site.option("values_dir") or site.option("wire_server_deploy"))


def values_from_files(site) -> kc.ValuesSource:
    """The values directory from --values-dir or <--wire-server-deploy>/values, or not_evaluated."""
    path = site.option("values_dir")
    if not path and site.option("wire_server_deploy"):
        path = str(Path(site.option("wire_server_deploy")).expanduser() / "values")
    if not path:
        not_evaluated("no Helm values directory was named",
                      option="--values-dir (or --wire-server-deploy with its values/)")
    root = Path(str(path)).expanduser()
    if not root.is_dir():   # an input the operator has not made yet (helm-prod.md: copy the examples there)
        not_evaluated(f"the Helm values directory {root} does not exist",
                      option="--values-dir (or --wire-server-deploy with its values/<chart>/values.yaml)")
    src = kc.values_dir(root)
    if src.problems:
        record(values_problems=list(src.problems))
    return src


def need_release(site, src: kc.ValuesSource, release: str = "wire-server") -> None:
    """Values files with no values for ``release``: not_evaluated, naming the files looked for and the example
    wire-server-deploy ships to copy (helm-prod.md: `cp values/wire-server/prod-values.example.yaml ...`)."""
    if src.method != kc.FILES_METHOD or src.has(release):
        return
    chart = Path(src.where) / release
    kind = "demo" if site.profile == "demo" else "prod"
    examples = {name: chart / f"{kind}-{name}.example.yaml" for name in ("values", "secrets")}
    copy = [f"cp {example} {chart / (name + '.yaml')}" for name, example in examples.items() if example.is_file()]
    record(looked_for=[str(chart / "values.yaml"), str(chart / "secrets.yaml")],
           examples=[str(e) for e in examples.values() if e.is_file()])
    not_evaluated(f"no {release} values: neither {chart / 'values.yaml'} nor {chart / 'secrets.yaml'} exists"
                  + (f"; start from wire-server-deploy's examples: {'; '.join(copy)}" if copy else ""),
                  option="--values-dir (or --wire-server-deploy with values/" + release + "/values.yaml)")


def federating(site, src: kc.ValuesSource | None = None) -> bool:
    """Federation is intended: --federation, federation_enabled/federation in the inventory, or the values say so."""
    v = site.vars
    return bool(site.option("federation")) or kc.truthy(v.get("federation_enabled", False)) or \
        kc.truthy(v.get("federation", False)) or (src is not None and kc.federation_in_values(src))


def infra_domain(site) -> str | None:
    if site.vars.get("federator_domain"):
        return str(site.vars["federator_domain"])
    return f"federator.{site.domain}" if site.domain else None


def check_federation_domain(site, src: kc.ValuesSource) -> None:
    conclude(kc.judge_federation_domain(src, federating(site, src), infra_domain(site), site.domain),
             "federation domain")


def check_federation_ca_trust(site, src: kc.ValuesSource) -> None:
    if not federating(site, src):
        not_applicable("federation is not enabled (--federation, federation_enabled, or the chart values)")
    conclude(kc.judge_federation_ca_trust(src), "federation CA trust")


def rabbitmq_used(site, src: kc.ValuesSource) -> bool:
    ws = src.get("wire-server") or {}
    return src.has("rabbitmq") or src.has("rabbitmq-external") or bool(site.targets_with_role("rmq-cluster")) or \
        kc.dig(ws, "brig.config.rabbitmq") is not None or federating(site, src)


@requirement("FED-DOMAIN")
def test_federation_domain(site, spec):
    src = values_from_files(site)
    need_release(site, src)
    check_federation_domain(site, src)


@requirement("FED-CA-TRUST")
def test_federation_ca_trust(site, spec):
    if not federating(site) and not has_values_files(site):
        not_applicable("federation is not enabled (--federation or federation_enabled), and no values to say so")
    src = values_from_files(site)
    need_release(site, src)
    check_federation_ca_trust(site, src)


@requirement("PROD-ACC-SMTP")
def test_smtp(site, spec):
    src = values_from_files(site)
    need_release(site, src)
    conclude(kc.judge_smtp(src), "SMTP configuration")


@requirement("PROD-ACC-SECRETS")
def test_secrets(site, spec):
    src = values_from_files(site)
    need_release(site, src)
    conclude(kc.judge_secrets(src, rabbitmq_used(site, src)), "wire-server secrets")
