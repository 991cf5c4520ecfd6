//! Authorization end to end: a broker with the authorizer on, ACLs managed with `basalt acl`
//! (CreateAcls, DescribeAcls, DeleteAcls), and real librdkafka clients allowed and refused
//! produce, consume, group membership, topic creation and transactional ids as the ACLs say.
//!
//! Without SASL every client is `User:ANONYMOUS` from 127.0.0.1, so the ACLs name that
//! principal. Each broker starts with `super.users` empty and one bootstrap grant (ALTER and
//! DESCRIBE on the cluster, so the CLI may manage ACLs), made through the broker's API.

use std::process::Command;
use std::time::{Duration, Instant};

use basalt_broker::acl::{
    AclBinding, CLUSTER_NAME, Operation, PatternType, Permission, ResourceType,
};
use basalt_testkit::TestBroker;
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseRecord, DefaultProducerContext, FutureRecord, Producer, ThreadedProducer,
};
use serde_json::Value;

use crate::common::{TIMEOUT, admin, admin_options, block_on, consume_exactly, producer};

const ANONYMOUS: &str = "User:ANONYMOUS";

/// What one run of `basalt` gave.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn basalt(bootstrap: &str, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args(args)
        .env("BASALT_BROKERS", bootstrap)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `basalt acl ...` and asserts that it worked.
fn acl(bootstrap: &str, args: &[&str]) {
    let mut all = vec!["acl"];
    all.extend_from_slice(args);
    let run = basalt(bootstrap, &all);
    assert!(
        run.ok,
        "basalt {all:?} failed: {}{}",
        run.stdout, run.stderr
    );
}

/// `basalt acl list --json`, as `(principal, operation, permission, type, name, pattern)`.
fn list(bootstrap: &str) -> Vec<(String, String, String, String, String, String)> {
    let run = basalt(bootstrap, &["acl", "list", "--json"]);
    assert!(run.ok, "acl list failed: {}", run.stderr);
    let rows: Value = serde_json::from_str(&run.stdout).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap().to_owned();
            (
                s("principal"),
                s("operation"),
                s("permission"),
                s("resource_type"),
                s("resource_name"),
                s("pattern_type"),
            )
        })
        .collect()
}

fn cluster_grant(operation: Operation) -> AclBinding {
    AclBinding {
        resource_type: ResourceType::Cluster,
        resource_name: CLUSTER_NAME.into(),
        pattern_type: PatternType::Literal,
        principal: ANONYMOUS.into(),
        host: "*".into(),
        operation,
        permission: Permission::Allow,
    }
}

/// A broker with the authorizer on, `super.users` empty, no fallback to allow, and the
/// bootstrap grant.
fn secured() -> TestBroker {
    let broker = TestBroker::start_with(|c| {
        c.authorizer.enabled = true;
        c.groups.initial_rebalance_delay_ms = 0;
    });
    broker
        .broker()
        .create_acls(vec![
            cluster_grant(Operation::Alter),
            cluster_grant(Operation::Describe),
        ])
        .unwrap();
    broker
}

/// Creates `name` directly on the broker (no CreateTopics, so no ACL is needed).
fn make_topic(broker: &TestBroker, name: &str) {
    broker
        .broker()
        .create_topic(name, 1, 1, Default::default(), false)
        .unwrap();
}

/// Produces one record with a fresh producer; the error code if it was refused.
fn try_produce(bootstrap: &str, topic: &str) -> Result<(), RDKafkaErrorCode> {
    let p = producer(bootstrap, &[("message.timeout.ms", "10000")]);
    let sent = p
        .send_result(FutureRecord::<[u8], [u8]>::to(topic).payload(b"hello".as_slice()))
        .unwrap_or_else(|(e, _)| panic!("could not enqueue: {e}"));
    match block_on(sent).expect("delivery report lost") {
        Ok(_) => Ok(()),
        Err((KafkaError::MessageProduction(code), _)) => Err(code),
        Err((e, _)) => panic!("unexpected produce error {e}"),
    }
}

/// Polls `consumer` until it reports an error (returned) or a record arrives (a panic).
fn first_error(consumer: &BaseConsumer, what: &str) -> RDKafkaErrorCode {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(_)) => panic!("{what}: a record arrived although it should be refused"),
            Some(Err(KafkaError::MessageConsumption(code))) => return code,
            Some(Err(e)) => match e.rdkafka_error_code() {
                Some(code) => return code,
                None => panic!("{what}: unexpected error {e}"),
            },
        }
    }
    panic!("{what}: no error within {TIMEOUT:?}");
}

#[test]
fn produce_consume_and_metadata_follow_acls() {
    let broker = secured();
    let b = broker.bootstrap();
    make_topic(&broker, "orders");
    make_topic(&broker, "secret");

    // No ACL on the topic: produce is refused.
    assert_eq!(
        try_produce(&b, "orders"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    acl(
        &b,
        &[
            "add",
            "--allow",
            "--principal",
            ANONYMOUS,
            "--operation",
            "write",
            "--topic",
            "orders",
        ],
    );
    assert_eq!(try_produce(&b, "orders"), Ok(()));

    // WRITE implies DESCRIBE, so the topic is visible, but reading it is refused (the
    // consumers' groups are allowed, so only the fetch can fail).
    for group in ["readers", "basalt-e2e"] {
        acl(
            &b,
            &[
                "add",
                "--allow",
                "--principal",
                ANONYMOUS,
                "--operation",
                "read",
                "--group",
                group,
            ],
        );
    }
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("group.id", "readers")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("orders", 0, rdkafka::Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    assert_eq!(
        first_error(&c, "fetch without READ"),
        RDKafkaErrorCode::TopicAuthorizationFailed
    );
    drop(c);
    acl(
        &b,
        &[
            "add",
            "--allow",
            "--principal",
            ANONYMOUS,
            "--operation",
            "read",
            "--topic",
            "orders",
        ],
    );
    let got = consume_exactly(&b, "orders", &[(0, 1)]);
    assert_eq!(got[&0].len(), 1);

    // Metadata of all topics hides the topic the principal may not describe.
    let md = admin(&b).inner().fetch_metadata(None, TIMEOUT).unwrap();
    let names: Vec<&str> = md.topics().iter().map(|t| t.name()).collect();
    assert!(names.contains(&"orders"), "{names:?}");
    assert!(!names.contains(&"secret"), "{names:?}");

    // A DENY wins over the ALLOW, for every principal (User:*), and removing it restores access.
    acl(
        &b,
        &[
            "add",
            "--deny",
            "--principal",
            "User:*",
            "--operation",
            "write",
            "--topic",
            "orders",
        ],
    );
    assert_eq!(
        try_produce(&b, "orders"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    let acls = list(&b);
    assert!(
        acls.contains(&(
            "User:*".into(),
            "WRITE".into(),
            "DENY".into(),
            "TOPIC".into(),
            "orders".into(),
            "LITERAL".into()
        )),
        "{acls:?}"
    );
    acl(
        &b,
        &[
            "remove",
            "--deny",
            "--principal",
            "User:*",
            "--topic",
            "orders",
        ],
    );
    assert_eq!(try_produce(&b, "orders"), Ok(()));
    assert_eq!(list(&b).len(), acls.len() - 1);
}

#[test]
fn group_join_needs_read_on_the_group() {
    let broker = secured();
    let b = broker.bootstrap();
    make_topic(&broker, "events");
    acl(
        &b,
        &[
            "add",
            "--allow",
            "--principal",
            ANONYMOUS,
            "--operation",
            "read,write",
            "--topic",
            "events",
        ],
    );
    let member = || -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", &b)
            .set("group.id", "billing")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap()
    };
    let c = member();
    c.subscribe(&["events"]).unwrap();
    assert_eq!(
        first_error(&c, "join without READ on the group"),
        RDKafkaErrorCode::GroupAuthorizationFailed
    );
    drop(c);

    acl(
        &b,
        &[
            "add",
            "--allow",
            "--principal",
            ANONYMOUS,
            "--operation",
            "read",
            "--group",
            "bill",
            "--prefixed",
        ],
    );
    assert_eq!(try_produce(&b, "events"), Ok(()));
    let c = member();
    c.subscribe(&["events"]).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        assert!(Instant::now() < deadline, "no record through the group");
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => break,
            Some(Err(e)) => panic!("member of an allowed group: {e}"),
            None => {}
        }
    }
}

#[test]
fn topic_creation_follows_acls() {
    let broker = secured();
    let b = broker.bootstrap();
    let create = |name: &str| {
        let topic = NewTopic::new(name, 1, TopicReplication::Fixed(1));
        let results = block_on(admin(&b).create_topics(&[topic], &admin_options())).unwrap();
        results
            .into_iter()
            .next()
            .unwrap()
            .map(|_| ())
            .map_err(|(_, code)| code)
    };
    assert_eq!(
        create("team-a"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    acl(
        &b,
        &[
            "add",
            "--allow",
            "--principal",
            ANONYMOUS,
            "--operation",
            "create",
            "--topic",
            "team-",
            "--prefixed",
        ],
    );
    assert_eq!(create("team-a"), Ok(()));
    assert_eq!(
        create("other"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    // CREATE on the cluster allows any topic.
    acl(
        &b,
        &[
            "add",
            "--allow",
            "--principal",
            ANONYMOUS,
            "--operation",
            "create",
            "--cluster",
        ],
    );
    assert_eq!(create("other"), Ok(()));
    assert!(broker.broker().topic("other").is_some());
}

#[test]
fn transactional_ids_follow_acls() {
    let broker = secured();
    let b = broker.bootstrap();
    make_topic(&broker, "ledger");
    acl(
        &b,
        &[
            "add",
            "--allow",
            "--principal",
            ANONYMOUS,
            "--operation",
            "write",
            "--topic",
            "ledger",
        ],
    );
    let txn_producer = || -> ThreadedProducer<DefaultProducerContext> {
        ClientConfig::new()
            .set("bootstrap.servers", &b)
            .set("transactional.id", "tx-payments")
            .set("linger.ms", "5")
            .create()
            .unwrap()
    };
    let p = txn_producer();
    let refused = p.init_transactions(TIMEOUT).unwrap_err();
    assert_eq!(
        refused.rdkafka_error_code(),
        Some(RDKafkaErrorCode::TransactionalIdAuthorizationFailed),
        "{refused}"
    );
    drop(p);

    acl(
        &b,
        &[
            "add",
            "--allow",
            "--principal",
            ANONYMOUS,
            "--operation",
            "write",
            "--transactional-id",
            "tx-",
            "--prefixed",
        ],
    );
    let p = txn_producer();
    p.init_transactions(TIMEOUT).unwrap();
    p.begin_transaction().unwrap();
    p.send(BaseRecord::<(), str>::to("ledger").payload("paid"))
        .unwrap_or_else(|(e, _)| panic!("could not enqueue: {e}"));
    p.commit_transaction(TIMEOUT).unwrap();
}

#[test]
fn acls_survive_a_restart() {
    let broker = secured();
    let b = broker.bootstrap();
    acl(
        &b,
        &[
            "add",
            "--allow",
            "--principal",
            "User:alice",
            "--host",
            "10.0.0.7",
            "--operation",
            "read",
            "--topic",
            "audit-",
            "--prefixed",
        ],
    );
    let before = list(&b);
    assert_eq!(before.len(), 3, "{before:?}");
    assert!(broker.data_dir().join("acls.json").exists());
    let broker = broker.restart_with(|c| c.authorizer.enabled = true);
    let after = list(&broker.bootstrap());
    assert_eq!(after, before);
}

#[test]
fn acl_apis_answer_security_disabled_without_an_authorizer() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    for args in [
        vec!["acl", "list"],
        vec![
            "acl",
            "add",
            "--allow",
            "--principal",
            ANONYMOUS,
            "--operation",
            "read",
            "--topic",
            "t",
        ],
        vec!["acl", "remove", "--topic", "t"],
    ] {
        let run = basalt(&b, &args);
        assert!(!run.ok, "{args:?} succeeded: {}", run.stdout);
        assert!(
            run.stderr.contains("SECURITY_DISABLED"),
            "{args:?}: {}",
            run.stderr
        );
    }
    // And every request is allowed, as before.
    assert_eq!(try_produce(&b, "anything"), Ok(()));
}

/// `basalt serve` turns the authorizer on with `--authorizer` or Kafka's `authorizer.class.name`,
/// and `super.users` are allowed everything.
#[test]
fn serve_flags_enable_the_authorizer() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_basalt"));
    let dir = tempfile::tempdir().unwrap();
    let broker = basalt_testkit::ProcessBroker::start(
        bin,
        dir.path(),
        &["--authorizer", "--super.users", "User:admin;User:ANONYMOUS"],
    );
    let b = broker.bootstrap();
    acl(
        &b,
        &[
            "add",
            "--allow",
            "--principal",
            "User:alice",
            "--operation",
            "read",
            "--topic",
            "t",
        ],
    );
    assert_eq!(list(&b).len(), 1);
    let (status, log) = broker.terminate();
    assert!(status.success(), "{log}");

    // Kafka's setting, no super users: managing ACLs needs ALTER on the cluster, which nobody has.
    let broker = basalt_testkit::ProcessBroker::start(
        bin,
        dir.path(),
        &[
            "--authorizer.class.name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        ],
    );
    let b = broker.bootstrap();
    let run = basalt(&b, &["acl", "list"]);
    assert!(
        !run.ok && run.stderr.contains("CLUSTER_AUTHORIZATION_FAILED"),
        "{}",
        run.stderr
    );
    let (status, log) = broker.terminate();
    assert!(status.success(), "{log}");
}
