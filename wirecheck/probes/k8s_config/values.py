"""Where Helm values come from: the deployed releases' Secrets (`helm get values`) or a wire-server-deploy
`values/` directory; and the helpers every judge uses to read them (dig, placeholders, truthy).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..k8s import (
    DEFAULT_TIMEOUT,
    HELM_SECRET_TYPE,
    JSON,
    Judgement,
    KubeApi,
    decode_helm_release,
)
from ..k8s.judgement import _meta, _names

HELM_VALUES_METHOD = ("GET /api/v1/secrets?labelSelector=owner=helm (latest deployed revision of each release, "
                      "decoded `config`: what `helm get values` prints)")
FILES_METHOD = "values/<chart>/values.yaml deep-merged with values/<chart>/secrets.yaml"

PLACEHOLDERS = re.compile(r"^(|<.*>|\{\{.*\}\}|changeme|change[-_ ]?me|todo|xxx+|\.\.\.|replace[-_ ]?me|"
                          r"secret|password|example|null|none|fixme)$", re.I)


@dataclass(frozen=True)
class ValuesSource:
    """Chart values by release name and where they were read."""

    releases: dict[str, JSON]
    method: str
    where: str
    problems: tuple[str, ...] = ()

    def get(self, release: str) -> JSON | None:
        return self.releases.get(release)

    def has(self, release: str) -> bool:
        return release in self.releases


def release_values(api: KubeApi, timeout: float = DEFAULT_TIMEOUT) -> ValuesSource:
    """The user-supplied values of the newest *deployed* revision of every Helm 3 release."""
    secrets = api.list("secrets", label_selector="owner=helm", field_selector=f"type={HELM_SECRET_TYPE}",
                       timeout=timeout)
    best: dict[str, tuple[int, JSON]] = {}
    for s in secrets:
        labels = _meta(s).get("labels") or {}
        if labels.get("status") != "deployed":
            continue
        try:
            rev = int(labels.get("version", "0"))
        except ValueError:
            rev = 0
        name = labels.get("name", "")
        if name not in best or rev > best[name][0]:
            best[name] = (rev, s)
    releases: dict[str, JSON] = {}
    problems = []
    for name, (_rev, s) in sorted(best.items()):
        try:
            doc = decode_helm_release((s.get("data") or {}).get("release", ""))
        except ValueError as exc:
            problems.append(f"{name}: release not decodable ({exc})")
            continue
        cfg = doc.get("config")
        releases[name] = cfg if isinstance(cfg, dict) else {}
    return ValuesSource(releases, HELM_VALUES_METHOD, api.source or "cluster", tuple(problems))


def deep_merge(base: JSON, over: JSON) -> JSON:
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, dict) else v
    return out


def values_dir(path: str | Path) -> ValuesSource:
    """`<path>/<chart>/values.yaml` + `secrets.yaml` (either may be missing) for every chart directory."""
    import yaml

    root = Path(path)
    releases: dict[str, JSON] = {}
    problems: list[str] = []
    for chart in sorted(p for p in root.iterdir() if p.is_dir()):
        merged: JSON = {}
        found = False
        for fname in ("values.yaml", "secrets.yaml"):
            f = chart / fname
            if not f.is_file():
                continue
            found = True
            try:
                doc = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError) as exc:
                problems.append(f"{f}: {str(exc).splitlines()[0]}")
                continue
            if isinstance(doc, dict):
                merged = deep_merge(merged, doc)
            else:
                problems.append(f"{f}: not a mapping")
        if found:
            releases[chart.name] = merged
    return ValuesSource(releases, FILES_METHOD, str(root), tuple(problems))


def dig(values: Any, dotted: str, default: Any = None) -> Any:
    cur = values
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return default
        cur = cur[part]
    return cur


def is_placeholder(value: Any) -> bool:
    return value is None or (isinstance(value, str) and bool(PLACEHOLDERS.match(value.strip())))


def truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _missing_wire_server(src: ValuesSource, expected: str, method: str) -> Judgement | None:
    if src.has("wire-server"):
        return None
    return Judgement(False, f"no wire-server values in {src.where} (releases: {_names(sorted(src.releases))})",
                     expected, method, message="the wire-server values could not be found", measurable=False)
