"""A site's own provisioner: one command step that writes a marker file (no Ansible)."""

from provisioners import ProvisionContext, Provisioner, Step


class SiteEchoProvisioner(Provisioner):
    name = "site-echo"
    profile = "demo"
    needs = ("wire-server-deploy",)
    description = "test plugin"

    def plan(self, ctx: ProvisionContext) -> list[Step]:
        marker = ctx.report_dir / "site-echo.marker"
        return [Step(name="site-echo", kind="command", argv=["sh", "-c", 'echo "$1" > "$2"', "sh",
                                                               ctx.profile, str(marker)])]
