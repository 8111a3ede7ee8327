"""Wire-in-a-Box (demo): Wire's `ansible/wiab-demo/deploy_wiab.yml`, run from the repository root."""

from __future__ import annotations

from provisioners import ProvisionContext, Provisioner, ProvisionError, Step

DEPLOY_PLAYBOOK = "ansible/wiab-demo/deploy_wiab.yml"


class DemoProvisioner(Provisioner):
    name = "demo"
    profile = "demo"
    needs = ("inventory", "wire-server-deploy")
    description = "Wire-in-a-Box: one Ubuntu 24.04 node, deploy_wiab.yml (docs: how-to/install/demo-wiab.md)"

    def plan(self, ctx: ProvisionContext) -> list[Step]:
        self.check_inputs(ctx)
        playbook = ctx.wsd / DEPLOY_PLAYBOOK
        if not playbook.is_file():
            raise ProvisionError(f"{playbook} not found: is {ctx.wsd} a wire-server-deploy checkout?")
        return [Step(
            name="deploy_wiab",
            kind="playbook",
            playbook=playbook,
            inventory=ctx.inventory,
            cwd=ctx.wsd,  # the docs run the playbook from the repository root
            tags=list(ctx.ansible.tags),
            skip_tags=list(ctx.ansible.skip_tags),
            extra_vars=dict(ctx.ansible.extra_vars),
            doc="demo-wiab.md › Getting Started",
        )]
