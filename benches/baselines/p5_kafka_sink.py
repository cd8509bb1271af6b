"""P5 Kafka sink baseline: the usual Python producer (confluent-kafka, on
the same librdkafka 2.12 as frameflow) sending rows from a JSONL file to a
topic, one message per row, keyed by the row's frame id, then waiting for
every delivery. Prints rows/s.

Usage: p5_kafka_sink.py BROKERS TOPIC ROWS.jsonl
"""
import json
import sys
import time

from confluent_kafka import Producer

brokers, topic, path = sys.argv[1:4]
with open(path, "rb") as f:
    lines = f.read().splitlines()
failed = []
producer = Producer({"bootstrap.servers": brokers, "linger.ms": 5, "enable.idempotence": True})


def report(err, _msg):
    if err is not None:
        failed.append(err)


start = time.perf_counter()
for line in lines:
    row = json.loads(line)  # as a sink gets rows, not bytes
    value = json.dumps(row, separators=(",", ":"))
    while True:
        try:
            producer.produce(topic, value=value, key=row["frame_id"], on_delivery=report)
            break
        except BufferError:
            producer.poll(0.01)
    producer.poll(0)
producer.flush(60)
elapsed = time.perf_counter() - start
if failed:
    sys.exit(f"{len(failed)} rows not delivered: {failed[0]}")
print(f"{len(lines) / elapsed:.1f}")
