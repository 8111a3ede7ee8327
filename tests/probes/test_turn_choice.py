"""wirecheck.turn: which address each TURN check probes, and the reason it gives (no network)."""

from __future__ import annotations

from dataclasses import dataclass, field

from wirecheck.turn import TurnAddress, target_turn_address, turn_addresses


@dataclass
class Host:
    name: str
    address: str
    roles: list[str]
    vars: dict = field(default_factory=dict)


@dataclass
class Site:
    targets: list[Host]
    profile: str = "production"
    wire_ip: str | None = None
    vars: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)

    def option(self, name, default=None):
        return self.options.get(name, default)

    def targets_with_role(self, *roles):
        return [t for t in self.targets if set(roles) & set(t.roles)]


R1 = Host("restund01", "10.0.0.11", ["restund"], {"restund_public_ip": "203.0.113.11"})
R2 = Host("restund02", "10.0.0.12", ["restund"], {"public_ip": "203.0.113.12"})
BARE = Host("restund03", "10.0.0.13", ["restund"])
NODE = Host("kubenode1", "10.0.0.20", ["kube-node"])


def test_public_ip_variables_before_the_login_address():
    site = Site([R1, R2, NODE])
    assert turn_addresses(site) == [TurnAddress("203.0.113.11", "restund_public_ip of restund01"),
                                    TurnAddress("203.0.113.12", "public_ip of restund02")]
    assert target_turn_address(R1, site) == TurnAddress("203.0.113.11", "restund_public_ip of restund01")
    assert target_turn_address(NODE, site) is None  # not a TURN host: its own address


def test_turn_ip_wins_and_maps_to_a_single_turn_host():
    site = Site([R1, NODE], options={"turn_ip": ["198.51.100.7"]})
    assert turn_addresses(site) == [TurnAddress("198.51.100.7", "--turn-ip")]
    assert target_turn_address(R1, site).address == "198.51.100.7"
    two = Site([R1, R2], options={"turn_ip": ["198.51.100.7"]})  # which host it belongs to is unknown
    assert target_turn_address(R1, two).address == "203.0.113.11"


def test_without_public_ip_values_then_login_address():
    site = Site([R1, BARE])
    fallback = turn_addresses(site)
    assert fallback[1].address == "10.0.0.13" and fallback[1].source.startswith("ansible_host of restund03")
    from_values = turn_addresses(site, ["turn1.example.test"], "brig.turnStatic.v2 from the release")
    assert [a.address for a in from_values] == ["203.0.113.11", "turn1.example.test"]
    assert "no restund_public_ip for restund03" in from_values[1].source
    assert target_turn_address(BARE, site) is None


def test_demo_uses_wire_ip_and_inventory_turn_servers_come_before_hosts():
    demo = Site([Host("deploy_node", "10.0.0.5", ["deploy_node"])], profile="demo", wire_ip="192.0.2.10")
    assert turn_addresses(demo) == [TurnAddress("192.0.2.10", "wire_ip (the demo forwards 3478 to coturn)")]
    assert target_turn_address(demo.targets[0], demo).address == "192.0.2.10"
    listed = Site([R1], vars={"turn_servers": ["198.51.100.1", "198.51.100.1"]})
    assert turn_addresses(listed) == [TurnAddress("198.51.100.1", "turn_servers in the inventory")]
    assert turn_addresses(Site([NODE])) == []
