"""What every Kubernetes judge returns (Judgement) and the small helpers the judges share: name lists for
messages, metadata access, CPU quantities and API timestamps.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .api import JSON


@dataclass(frozen=True)
class Judgement:
    """A judge's conclusion; the check turns it into a verdict.

    applicable=False means the requirement's condition does not hold (e.g. SFT not deployed);
    measurable=False means the facts needed are not visible (becomes `error`).
    """

    ok: bool
    observed: str
    expected: str
    method: str
    message: str = ""
    evidence: JSON = field(default_factory=dict)
    applicable: bool = True
    measurable: bool = True


def _names(items: Iterable[str], limit: int = 12) -> str:
    items = list(items)
    if not items:
        return "none"
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def _meta(obj: JSON) -> JSON:
    return obj.get("metadata") or {}


def parse_cpu(quantity: str | None) -> float:
    """Kubernetes CPU quantity ("8", "7800m", "1.5") to cores."""
    if not quantity:
        return 0.0
    q = str(quantity).strip()
    try:
        if q.endswith("m"):
            return float(q[:-1]) / 1000
        if q.endswith("k"):
            return float(q[:-1]) * 1000
        return float(q)
    except ValueError:
        return 0.0


def parse_k8s_time(value: str | None) -> datetime | None:
    """RFC 3339 with optional fractional seconds of any length (the kubelet writes nanoseconds)."""
    if not value:
        return None
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", value.strip())
    if not m:
        return None
    frac = (m.group(2) or "0")[:6].ljust(6, "0")
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    try:
        return datetime.fromisoformat(f"{m.group(1)}.{frac}{tz}").astimezone(UTC)
    except ValueError:
        return None
