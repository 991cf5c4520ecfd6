// tests/e2e/kafkajs_txn.js BROKER: transactions with kafkajs, a client that implements the Kafka
// protocol itself (not librdkafka). A committed and an aborted transaction; a consumer reading
// committed data sees only the first; offsets sent with a committed transaction are the group's.
//
// Exits 0 when every check passed; prints what it saw otherwise.

const { Kafka, logLevel } = require("kafkajs");

const broker = process.argv[2];
const kafka = new Kafka({
  clientId: "basalt-e2e-kafkajs",
  brokers: [broker],
  logLevel: logLevel.NOTHING,
});

function fail(message) {
  console.error(`kafkajs: ${message}`);
  process.exit(1);
}

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    topics: [
      { topic: "js-in", numPartitions: 1 },
      { topic: "js-out", numPartitions: 1 },
    ],
  });

  const plain = kafka.producer();
  await plain.connect();
  await plain.send({
    topic: "js-in",
    messages: [{ value: "a" }, { value: "b" }, { value: "c" }],
  });
  await plain.disconnect();

  const producer = kafka.producer({
    transactionalId: "js-copier",
    idempotent: true,
    maxInFlightRequests: 1,
  });
  await producer.connect();

  // Committed: the output and the input offset move together.
  let txn = await producer.transaction();
  await txn.send({ topic: "js-out", messages: [{ value: "committed-1" }, { value: "committed-2" }] });
  await txn.sendOffsets({
    consumerGroupId: "js-group",
    topics: [{ topic: "js-in", partitions: [{ partition: 0, offset: "2" }] }],
  });
  await txn.commit();

  // Aborted: neither moves.
  txn = await producer.transaction();
  await txn.send({ topic: "js-out", messages: [{ value: "aborted" }] });
  await txn.sendOffsets({
    consumerGroupId: "js-group",
    topics: [{ topic: "js-in", partitions: [{ partition: 0, offset: "3" }] }],
  });
  await txn.abort();
  await producer.disconnect();

  const offsets = await admin.fetchOffsets({ groupId: "js-group", topics: ["js-in"] });
  const committed = offsets[0].partitions[0].offset;
  if (committed !== "2") fail(`committed offset of js-group is ${committed}, expected 2`);

  const consumer = kafka.consumer({ groupId: "js-reader", readUncommitted: false });
  await consumer.connect();
  await consumer.subscribe({ topic: "js-out", fromBeginning: true });
  const seen = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`read only ${JSON.stringify(seen)}`)), 30000);
    consumer
      .run({
        eachMessage: async ({ message }) => {
          seen.push(message.value.toString());
          if (seen.length >= 2) {
            // Give an aborted record the chance to show up wrongly.
            setTimeout(() => {
              clearTimeout(timer);
              resolve();
            }, 1000);
          }
        },
      })
      .catch(reject);
  });
  await consumer.disconnect();
  await admin.disconnect();
  if (JSON.stringify(seen) !== JSON.stringify(["committed-1", "committed-2"])) {
    fail(`read_committed consumer saw ${JSON.stringify(seen)}`);
  }
  console.log("kafkajs: committed transaction seen, aborted one dropped, offsets committed with it");
}

main().catch((e) => fail(e.stack || String(e)));
