"""Provisioner plugins: preflight gate → install (Wire's playbooks) → acceptance gate.

A provisioner is small. It says what it needs (`needs`), turns a `ProvisionContext` into a list
of `Step`s (`plan`), and the shared runner executes those steps (`install` is the default
implementation; a plugin may override it). Provisioners are discovered through the Python
entry-point group ``wirecheck.provisioners``, so a site can ship its own in a separate package:

    [project.entry-points."wirecheck.provisioners"]
    mysite = "mysite_wire.provision:MySiteProvisioner"

The built-in demo and production provisioners are also registered here directly, so they work
from a source checkout that is not pip-installed.
"""

from __future__ import annotations

import importlib
import json
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

ENTRY_POINT_GROUP = "wirecheck.provisioners"

BUILTIN = {
    "demo": "provisioners.demo:DemoProvisioner",
    "production": "provisioners.production:ProductionProvisioner",
}


class ProvisionError(Exception):
    """A user-facing problem (bad input, missing checkout): one line, no traceback."""


@dataclass
class AnsibleOptions:
    """Pass-through options for every playbook run."""

    tags: list[str] = field(default_factory=list)
    skip_tags: list[str] = field(default_factory=list)
    extra_vars: dict[str, Any] = field(default_factory=dict)
    verbosity: int = 0


@dataclass
class ProvisionContext:
    profile: str
    wsd: Path  # root of the wire-server-deploy checkout
    inventory: Path | None
    report_dir: Path
    ansible: AnsibleOptions = field(default_factory=AnsibleOptions)
    env: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # provisioner-specific (e.g. helm values dir)


@dataclass
class Step:
    """One thing the install does: an Ansible playbook (run via ansible-runner) or a command."""

    name: str
    kind: str  # "playbook" | "command"
    playbook: Path | None = None
    inventory: Path | None = None
    argv: list[str] = field(default_factory=list)
    cwd: Path | None = None
    tags: list[str] = field(default_factory=list)
    skip_tags: list[str] = field(default_factory=list)
    extra_vars: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    doc: str = ""  # the doc section the step follows

    def ansible_argv(self) -> list[str]:
        """The ansible-playbook command line this step stands for (informational form)."""
        assert self.playbook is not None
        argv = ["ansible-playbook"]
        if self.inventory:
            argv += ["-i", str(self.inventory)]
        argv.append(str(self.playbook))
        if self.tags:
            argv += ["--tags", ",".join(self.tags)]
        if self.skip_tags:
            argv += ["--skip-tags", ",".join(self.skip_tags)]
        if self.extra_vars:
            argv += ["-e", json.dumps(self.extra_vars, sort_keys=True)]
        return argv

    def shell_line(self) -> str:
        argv = self.ansible_argv() if self.kind == "playbook" else self.argv
        line = shlex.join(argv)
        return f"(cd {shlex.quote(str(self.cwd))} && {line})" if self.cwd else line


class Provisioner:
    """Base class; subclasses set `name`, `profile`, `needs` and implement `plan`."""

    name: ClassVar[str] = ""
    profile: ClassVar[str] = ""
    # inputs the provisioner requires: "inventory", "wire-server-deploy", "kubeconfig", ...
    needs: ClassVar[tuple[str, ...]] = ("inventory", "wire-server-deploy")
    description: ClassVar[str] = ""

    def check_inputs(self, ctx: ProvisionContext) -> None:
        """Raise ProvisionError naming the first missing input."""
        if "inventory" in self.needs and (ctx.inventory is None or not ctx.inventory.is_file()):
            raise ProvisionError(f"{self.name}: an Ansible inventory file is required (--ansible-inventory)"
                                 + (f"; {ctx.inventory} does not exist" if ctx.inventory else ""))
        if "kubeconfig" in self.needs:
            import os

            given = ctx.options.get("kubeconfig") or os.environ.get("KUBECONFIG")
            default = Path.home() / ".kube" / "config"
            if not given and not default.is_file():
                raise ProvisionError(f"{self.name}: a kubeconfig is required for the Helm steps (--kubeconfig)")
            if given and not Path(str(given).split(os.pathsep)[0]).is_file():
                raise ProvisionError(f"{self.name}: kubeconfig {given} does not exist")

    def plan(self, ctx: ProvisionContext) -> list[Step]:
        raise NotImplementedError

    def install(self, ctx: ProvisionContext, steps: Sequence[Step],
                progress: Callable[[str], None] | None = None) -> InstallResult:
        from provisioners.runner import run_steps

        return run_steps(steps, ctx, progress=progress)


@dataclass
class StepOutcome:
    step: str
    ok: bool
    rc: int | None
    status: str
    elapsed_s: float
    counts: dict[str, int] = field(default_factory=dict)
    failed_tasks: list[dict[str, str]] = field(default_factory=list)
    command: str = ""
    log: str = ""


@dataclass
class InstallResult:
    ok: bool
    steps: list[StepOutcome] = field(default_factory=list)

    @property
    def failed_step(self) -> StepOutcome | None:
        return next((s for s in self.steps if not s.ok), None)


def _load(spec: str) -> type[Provisioner]:
    module, _, attr = spec.partition(":")
    obj = getattr(importlib.import_module(module), attr)
    if not (isinstance(obj, type) and issubclass(obj, Provisioner)):
        raise ProvisionError(f"{spec} is not a Provisioner subclass")
    return obj


def available() -> dict[str, str]:
    """name → "module:attr" for the built-ins and everything registered in the entry-point group."""
    found = dict(BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep.value
    return found


def get(name: str) -> Provisioner:
    specs = available()
    if name not in specs:
        raise ProvisionError(f"unknown provisioner {name!r}; available: {', '.join(sorted(specs))}")
    for ep in entry_points(group=ENTRY_POINT_GROUP, name=name):
        obj = ep.load()
        if not (isinstance(obj, type) and issubclass(obj, Provisioner)):
            raise ProvisionError(f"entry point {name} = {ep.value} is not a Provisioner subclass")
        return obj()
    return _load(specs[name])()
