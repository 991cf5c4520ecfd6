"""Consumer groups with confluent-kafka against a running broker: for each group protocol
(classic, and KIP-848's consumer), two members of one group split a topic's partitions and
together read every record once, commit, and a later member of the same group reads only what
was produced after the commits.

Usage: python_group.py HOST:PORT
"""

import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 3
COUNT = 300
TIMEOUT_S = 60


def consumer(bootstrap, group, protocol):
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "group.protocol": protocol,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
    if protocol == "classic":
        conf["heartbeat.interval.ms"] = 500
    return Consumer(conf)


def produce(bootstrap, topic, start, count):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(start, start + count):
        p.produce(topic, key=f"k-{i}", value=f"v-{i}", partition=i % PARTITIONS)
    assert p.flush(TIMEOUT_S) == 0, "undelivered records"


def poll_all(consumers, want, seen):
    deadline = time.monotonic() + TIMEOUT_S
    while len(seen) < want:
        assert time.monotonic() < deadline, f"read {len(seen)} of {want} records"
        for i, c in enumerate(consumers):
            msg = c.poll(0.1)
            if msg is None:
                continue
            if msg.error() is not None:
                raise KafkaException(msg.error())
            key = msg.key().decode()
            assert key not in seen, f"{key} read twice"
            seen[key] = (i, msg.partition())


def check(bootstrap, protocol):
    topic = f"py-group-{protocol}-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        f.result(TIMEOUT_S)
    group = f"py-{protocol}"
    a, b = consumer(bootstrap, group, protocol), consumer(bootstrap, group, protocol)
    a.subscribe([topic])
    b.subscribe([topic])
    # Let the group settle before records arrive: a partition that moves while nothing is
    # committed is read again by its next owner (at-least-once).
    deadline = time.monotonic() + TIMEOUT_S
    while not (a.assignment() and b.assignment()
               and len(a.assignment()) + len(b.assignment()) == PARTITIONS):
        assert time.monotonic() < deadline, "the group never settled"
        for c in (a, b):
            msg = c.poll(0.1)
            assert msg is None or msg.error() is not None, "a record before any was produced"
    produce(bootstrap, topic, 0, COUNT)
    seen = {}
    poll_all([a, b], COUNT, seen)
    owners = {}
    for key, (who, partition) in seen.items():
        assert owners.setdefault(partition, who) == who, f"partition {partition} read by both"
    assert set(owners.values()) == {0, 1}, f"one member read everything: {owners}"
    for c in (a, b):
        c.commit(asynchronous=False)
        c.close()
    produce(bootstrap, topic, COUNT, PARTITIONS)
    late = consumer(bootstrap, group, protocol)
    late.subscribe([topic])
    after = {}
    poll_all([late], PARTITIONS, after)
    assert all(int(k.split("-")[1]) >= COUNT for k in after), f"re-read old records: {after}"
    late.close()
    print(f"{protocol}: 2 members split {PARTITIONS} partitions, read {COUNT} once, resumed at commits")


def main(bootstrap):
    for protocol in ("classic", "consumer"):
        check(bootstrap, protocol)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    try:
        main(sys.argv[1])
    except Exception as exc:  # noqa: BLE001 - any failure is reported the same way
        print(f"python group check failed: {exc!r}", file=sys.stderr)
        sys.exit(1)
