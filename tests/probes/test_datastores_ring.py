"""The Cassandra ring judge on output captured from the lab's real Cassandra 5.0.4 ring (tests/lab/cassandra.py);
the end-to-end proof against the running ring is tests/checks/test_cassandra_ring.py."""

from __future__ import annotations

from wirecheck.probes import datastores_ring as ring

STATUS = """Datacenter: datacenter1
=======================
Status=Up/Down
|/ State=Normal/Leaving/Joining/Moving
--  Address     Load        Tokens  Owns (effective)  Host ID                               Rack
UN  198.18.8.3  115.51 KiB  4       100.0%            d82c695c-a270-4c9d-9dc9-d9c7da206047  rack1
UN  198.18.8.2  98.45 KiB   4       100.0%            1d92b724-8bd6-4938-8304-5b5ab4627086  rack1

"""
DESCRIBE_DOWN = """Cluster Information:
\tName: wirecheck lab
\tSnitch: org.apache.cassandra.locator.SimpleSnitch
\tDynamicEndPointSnitch: enabled
\tPartitioner: org.apache.cassandra.dht.Murmur3Partitioner
\tSchema versions:
\t\td03783d7-b468-3c1a-82f1-8e30b2edde8b: [198.18.8.2]

\t\tUNREACHABLE: [198.18.8.3]

Stats for all nodes:
\tLive: 1
\tUnreachable: 1

Data Centers:
\tdatacenter1 #Nodes: 2 #Down: 1
"""
DESCRIBE_OK = DESCRIBE_DOWN.replace("[198.18.8.2]\n\n\t\tUNREACHABLE: [198.18.8.3]", "[198.18.8.2, 198.18.8.3]")
MEMBERS = {"cassandra1": ["198.18.8.2"], "cassandra2": ["198.18.8.3"]}
REFUSED = "nodetool: Failed to connect to '127.0.0.1:7199' - ConnectException: 'Connection refused'."


def test_parsers_read_real_nodetool_output():
    nodes = ring.parse_status(STATUS)
    assert [(n.state, n.address, n.datacenter) for n in nodes] == [
        ("UN", "198.18.8.3", "datacenter1"), ("UN", "198.18.8.2", "datacenter1")]
    assert nodes[0].host_id == "d82c695c-a270-4c9d-9dc9-d9c7da206047"
    c = ring.parse_describecluster(DESCRIBE_DOWN)
    assert c.name == "wirecheck lab" and c.unreachable == ["198.18.8.3"]
    assert c.schema_versions == {"d03783d7-b468-3c1a-82f1-8e30b2edde8b": ["198.18.8.2"]}


def test_judge_healthy_ring_passes_and_each_fault_is_named():
    ok = ring.judge_ring("cassandra1", STATUS, DESCRIBE_OK, MEMBERS, 2)
    assert ok.ok and ok.summary.startswith("2 of 2 node(s) UN"), ok
    down = ring.judge_ring("cassandra1", STATUS.replace("UN  198.18.8.3", "DN  198.18.8.3"), DESCRIBE_DOWN, MEMBERS, 2)
    assert not down.ok and down.problems[0] == "cassandra2 (198.18.8.3) is DN (Down/Normal)", down.problems
    assert down.evidence["down"] == ["198.18.8.3"]
    # an inventory member missing from the ring (another ring, or Cassandra on another address)
    extra = ring.judge_ring("cassandra1", STATUS, DESCRIBE_OK, {**MEMBERS, "cassandra3": ["198.18.8.4"]}, 2)
    assert not extra.ok and "cassandra3 (198.18.8.4) is not in the ring" in extra.problems
    # fewer nodes than the requirement asks for
    few = ring.judge_ring("cassandra1", STATUS, DESCRIBE_OK, MEMBERS, 3)
    assert few.problems == ["2 node(s) Up/Normal, the requirement needs at least 3"]
    # two schema versions
    split = DESCRIBE_OK.replace("[198.18.8.2, 198.18.8.3]", "[198.18.8.2]\n\t\te1f3a2b4-0000-3c1a-82f1-8e30b2edde8b: [198.18.8.3]")
    assert "2 schema versions (the nodes disagree on the schema)" in ring.judge_ring(
        "cassandra1", STATUS, split, MEMBERS, 2).problems
    # a joining node is not Up/Normal
    joining = ring.judge_ring("cassandra1", STATUS.replace("UN  198.18.8.2", "UJ  198.18.8.2"), DESCRIBE_OK, MEMBERS, 1)
    assert "cassandra1 (198.18.8.2) is UJ (Up/Joining)" in joining.problems


def test_no_rows_and_not_running():
    assert ring.judge_ring("c1", "error: nothing", None, MEMBERS, 2).problems == ["cannot parse nodetool status"]
    assert ring.not_running_reason(1, "", REFUSED + "\n") == REFUSED
    assert ring.not_running_reason(0, STATUS, "") is None
    assert ring.not_running_reason(127, "", "sh: 1: nodetool: not found") is None


def test_only_a_refused_jmx_port_means_not_running():
    """Only "Connection refused" on the JMX port means no Cassandra runs there. JMX that refuses nodetool
    (authentication on) or a port that does not answer is could-not-measure, with nodetool's words."""
    auth = ("nodetool: Failed to connect to '127.0.0.1:7199' - SecurityException: "
            "'Authentication failed! Credentials required'.")
    assert ring.not_running_reason(1, "", auth) is None
    timeout = "nodetool: Failed to connect to '10.0.0.5:7199' - ConnectException: 'Connection timed out'."
    assert ring.not_running_reason(1, "", timeout) is None   # not reached: could not measure
