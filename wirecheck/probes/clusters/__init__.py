"""Clustered datastores judged as clusters, from what every member says about itself.

Each member is measured on its own host over SSH with the tool the site has (psql, etcdctl,
rabbitmqctl); the judges then look at the set: one primary and its standbys, an etcd quorum and its
leader, the running RabbitMQ nodes. Plain Python, no pytest: ``measure_*`` run one command on one
target, ``judge_*`` are pure (members in, ``k8s.Judgement`` out).

A member whose server does not run (its socket is missing, the connection is refused) is a measured
fact about that member: the judges name it and fail. A member that could not be asked (host
unreachable, tool missing, sudo refused) is not measured: the judges say so and end in `error`
unless another member already showed a failure.

One module per datastore (`postgresql`, `etcd`, `rabbitmq`) on top of `members` (Member, machines,
decisive stderr lines, `combine`); this package re-exports their names.
"""

from __future__ import annotations

from ..k8s.judgement import Judgement
from .etcd import (
    ETCD_CANNOT,
    ETCD_CERT_DIR,
    ETCD_DECISIVE,
    ETCD_DOWN,
    EtcdAccess,
    etcd_endpoint_host,
    etcdctl_command,
    judge_etcd_cluster,
    measure_etcd_member,
)
from .members import (
    DOWN,
    HOST_FACTS,
    UNMEASURED,
    UP,
    Member,
    base_member,
    combine,
    count_word,
    decisive_line,
    distinct_machines,
    member_or_unreached,
)
from .postgresql import PG_DECISIVE, PG_DOWN, PG_SQL, judge_pg_cluster, measure_pg_member, pg_command
from .rabbitmq import (
    RMQ_CANNOT,
    RMQ_DECISIVE,
    RMQ_DOWN,
    RMQ_GUEST,
    RMQ_STATUS,
    judge_rabbitmq_cluster,
    measure_rabbitmq_member,
)

__all__ = [
    "Judgement",  # what the judges return
    "UP", "DOWN", "UNMEASURED",  # a member's state
    "ETCD_CANNOT", "ETCD_CERT_DIR", "ETCD_DECISIVE", "ETCD_DOWN", "EtcdAccess", "HOST_FACTS", "Member",
    "PG_DECISIVE", "PG_DOWN", "PG_SQL", "RMQ_CANNOT", "RMQ_DECISIVE", "RMQ_DOWN", "RMQ_GUEST",
    "RMQ_STATUS", "base_member", "combine", "count_word", "decisive_line", "distinct_machines",
    "etcd_endpoint_host", "etcdctl_command", "judge_etcd_cluster", "judge_pg_cluster",
    "judge_rabbitmq_cluster", "measure_etcd_member", "measure_pg_member", "measure_rabbitmq_member",
    "member_or_unreached", "pg_command",
]
