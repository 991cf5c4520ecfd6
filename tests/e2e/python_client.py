"""End-to-end check of a Basalt broker with the confluent-kafka Python client.

Usage: python_client.py HOST:PORT

Creates a topic with 3 partitions through the admin API, produces 1000 records with an
idempotent, zstd-compressing producer, reads them all back by assigning the partitions (no
consumer group), and checks counts, contents, order and watermarks. Exits non-zero on failure.
"""

import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

TOPIC = "py-events"
PARTITIONS = 3
COUNT = 1000
TIMEOUT_S = 30.0


def value_of(i):
    return f"value-{i}-" + "zstd " * 20


def main(bootstrap):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1)],
        operation_timeout=TIMEOUT_S,
        request_timeout=TIMEOUT_S,
    )
    futures[TOPIC].result(timeout=TIMEOUT_S)
    metadata = admin.list_topics(topic=TOPIC, timeout=TIMEOUT_S)
    got_partitions = len(metadata.topics[TOPIC].partitions)
    assert got_partitions == PARTITIONS, f"{got_partitions} partitions in metadata"
    print(f"created {TOPIC} with {PARTITIONS} partitions")

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "zstd",
            "linger.ms": 5,
            "message.timeout.ms": 30000,
        }
    )
    errors = []
    delivered = {}

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            delivered[msg.key().decode()] = (msg.partition(), msg.offset())

    for i in range(COUNT):
        while True:
            try:
                producer.produce(
                    TOPIC,
                    key=f"key-{i}",
                    value=value_of(i),
                    partition=i % PARTITIONS,
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(TIMEOUT_S)
    assert remaining == 0, f"{remaining} records not delivered in time"
    assert not errors, f"delivery errors: {errors[:5]}"
    assert len(delivered) == COUNT, f"{len(delivered)} delivery reports"
    print(f"produced {COUNT} records (idempotent, zstd)")

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "basalt-e2e-python",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    records = {}
    order = {p: [] for p in range(PARTITIONS)}
    deadline = time.monotonic() + TIMEOUT_S
    while len(records) < COUNT:
        assert time.monotonic() < deadline, f"only {len(records)} of {COUNT} records read"
        for msg in consumer.consume(num_messages=500, timeout=0.5):
            if msg.error() is not None:
                raise KafkaException(msg.error())
            key = msg.key().decode()
            assert key not in records, f"{key} read twice"
            records[key] = (msg.partition(), msg.offset(), msg.value().decode())
            order[msg.partition()].append(int(key.split("-")[1]))

    for i in range(COUNT):
        partition, offset, value = records[f"key-{i}"]
        assert partition == i % PARTITIONS, f"key-{i} in partition {partition}"
        assert value == value_of(i), f"key-{i} has value {value[:40]!r}"
        assert delivered[f"key-{i}"] == (partition, offset), f"key-{i} moved"
    for p in range(PARTITIONS):
        assert order[p] == sorted(order[p]), f"partition {p} out of order"
        low, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=TIMEOUT_S)
        assert (low, high) == (0, len(order[p])), f"partition {p} watermarks {low}..{high}"
    consumer.close()
    print(f"consumed {COUNT} records by assignment: contents, order and watermarks match")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    try:
        main(sys.argv[1])
    except Exception as exc:  # noqa: BLE001 - any failure is reported the same way
        print(f"python client check failed: {exc!r}", file=sys.stderr)
        sys.exit(1)
