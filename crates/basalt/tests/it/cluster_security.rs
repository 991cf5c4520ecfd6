//! ACLs and SCRAM users live in the replicated cluster metadata: created through one node of a
//! three-node cluster (with `basalt acl` and `basalt user`), they are in force on every node;
//! they survive a restart of the whole cluster and of a single node; and the `acls.json` /
//! `credentials.json` an older node kept are imported once.
//!
//! Every node has a PLAINTEXT listener, whose clients are `User:ANONYMOUS`, a super user (the
//! CLI and the nodes' own replication use it), and a SASL_PLAINTEXT listener, where librdkafka
//! logs in with SCRAM and the ACLs decide. Waits poll their condition; nothing asserts on
//! durations.

use std::path::Path;
use std::time::{Duration, Instant};

use basalt_testkit::ProcessBroker;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureRecord;

use crate::cluster::{Cluster, NodeSetup, eventually};
use crate::common::{TIMEOUT, block_on, create_topic, producer};
use crate::security::{basalt, files_under};

const SUPER: &str = "User:ANONYMOUS";

fn secured_setup() -> NodeSetup {
    NodeSetup {
        extra_args: [
            "--authorizer",
            "--super.users",
            SUPER,
            "--sasl.enabled.mechanisms",
            "SCRAM-SHA-256,SCRAM-SHA-512",
            "--connection.failed.authentication.delay.ms",
            "10",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect(),
        sasl: true,
        ..NodeSetup::default()
    }
}

/// librdkafka's SCRAM-SHA-512 login settings for `user`.
fn login(user: &str, password: &str) -> Vec<(String, String)> {
    vec![
        ("security.protocol".into(), "sasl_plaintext".into()),
        ("sasl.mechanism".into(), "SCRAM-SHA-512".into()),
        ("sasl.username".into(), user.into()),
        ("sasl.password".into(), password.into()),
    ]
}

/// What producing one record to `topic` through `bootstrap` as `user` gave: delivered, or the
/// error (an unknown user's failed login is reported as `Authentication`).
fn try_produce(bootstrap: &str, topic: &str, user: (&str, &str)) -> Result<(), RDKafkaErrorCode> {
    let settings = login(user.0, user.1);
    let mut extra: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    extra.push(("message.timeout.ms", "5000"));
    extra.push(("acks", "1"));
    produce_one(&producer(bootstrap, &extra), topic, b"hello")
}

/// What producing `value` to `topic` with `p` gave: delivered, or the error's code.
fn produce_one(
    p: &rdkafka::producer::FutureProducer,
    topic: &str,
    value: &[u8],
) -> Result<(), RDKafkaErrorCode> {
    let sent = p
        .send_result(FutureRecord::<[u8], [u8]>::to(topic).payload(value))
        .unwrap_or_else(|(e, _)| panic!("could not enqueue: {e}"));
    match block_on(sent).expect("delivery report lost") {
        Ok(_) => Ok(()),
        Err((KafkaError::MessageProduction(code), _)) => Err(code),
        Err((e, _)) => Err(e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail)),
    }
}

/// Polls producing until it gives `expected`; `Err(Fail)` stands for any failure other than
/// an authorization failure (a login that fails ends in one of several errors).
fn produce_gives(
    cluster: &Cluster,
    bootstrap: &str,
    topic: &str,
    user: (&str, &str),
    expected: Result<(), RDKafkaErrorCode>,
) {
    let what = format!(
        "{} producing to {topic} via {bootstrap}: {expected:?}",
        user.0
    );
    eventually(cluster, &what, || {
        let got = try_produce(bootstrap, topic, user);
        let done = match expected {
            Err(RDKafkaErrorCode::Fail) => {
                matches!(got, Err(c) if c != RDKafkaErrorCode::TopicAuthorizationFailed)
            }
            _ => got == expected,
        };
        done.then_some(())
    });
}

/// Any failure that is not an authorization failure: a refused login.
const LOGIN_REFUSED: Result<(), RDKafkaErrorCode> = Err(RDKafkaErrorCode::Fail);

/// Runs `basalt ARGS --brokers BOOTSTRAP` and asserts that it worked; returns stdout.
fn cli(bootstrap: &str, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--brokers", bootstrap]);
    let (ok, stdout, stderr) = basalt(&all);
    assert!(ok, "basalt {all:?} failed: {stdout}{stderr}");
    stdout
}

fn grant_write(bootstrap: &str, principal: &str, topic: &str) {
    cli(
        bootstrap,
        &[
            "acl",
            "add",
            "--allow",
            "--principal",
            principal,
            "--operation",
            "write",
            "--topic",
            topic,
        ],
    );
}

fn revoke_write(bootstrap: &str, principal: &str, topic: &str) {
    cli(
        bootstrap,
        &[
            "acl",
            "remove",
            "--allow",
            "--principal",
            principal,
            "--operation",
            "write",
            "--topic",
            topic,
        ],
    );
}

fn create_user(bootstrap: &str, user: &str, password: &str) {
    let out = cli(bootstrap, &["user", "create", user, "--password", password]);
    assert!(out.contains(&format!("created user {user}")), "{out}");
}

/// `basalt acl list --json` through `bootstrap`.
fn acl_list(bootstrap: &str) -> String {
    cli(bootstrap, &["acl", "list", "--json"])
}

#[test]
fn acls_and_users_made_through_one_node_are_in_force_on_every_node() {
    let cluster = Cluster::start_with(secured_setup());
    create_topic(&cluster.bootstrap(0), "orders", 1, &[]);
    // Through node 1: a user, and WRITE on the topic for them.
    create_user(&cluster.bootstrap(0), "alice", "alice-secret");
    create_user(&cluster.bootstrap(0), "bob", "bob-secret");
    grant_write(&cluster.bootstrap(0), "User:alice", "orders");
    let alice = ("alice", "alice-secret");
    let bob = ("bob", "bob-secret");
    // Logged in through nodes 2 and 3, alice may write; bob, who has no ACL, may not; a wrong
    // password does not log in.
    for i in [1, 2] {
        let sasl = cluster.sasl_bootstrap(i);
        produce_gives(&cluster, &sasl, "orders", alice, Ok(()));
        produce_gives(
            &cluster,
            &sasl,
            "orders",
            bob,
            Err(RDKafkaErrorCode::TopicAuthorizationFailed),
        );
        produce_gives(&cluster, &sasl, "orders", ("alice", "wrong"), LOGIN_REFUSED);
    }
    // Every node describes the same users and ACLs.
    for i in 0..3 {
        let users = cli(&cluster.bootstrap(i), &["user", "list", "--json"]);
        assert!(
            users.contains("\"alice\"") && users.contains("\"bob\""),
            "{users}"
        );
        let acls = acl_list(&cluster.bootstrap(i));
        assert!(acls.contains("User:alice"), "node {}: {acls}", i + 1);
    }
    // Removed through node 3, the ACL no longer lets alice write through node 1.
    revoke_write(&cluster.bootstrap(2), "User:alice", "orders");
    produce_gives(
        &cluster,
        &cluster.sasl_bootstrap(0),
        "orders",
        alice,
        Err(RDKafkaErrorCode::TopicAuthorizationFailed),
    );
    // A user deleted through node 2 can no longer log in through node 1.
    cli(&cluster.bootstrap(1), &["user", "delete", "bob"]);
    produce_gives(
        &cluster,
        &cluster.sasl_bootstrap(0),
        "orders",
        bob,
        LOGIN_REFUSED,
    );
}

#[test]
fn acls_and_users_survive_restarts_of_the_cluster() {
    let mut cluster = Cluster::start_with(secured_setup());
    create_topic(&cluster.bootstrap(0), "ledger", 1, &[]);
    create_user(&cluster.bootstrap(1), "carol", "carol-secret");
    grant_write(&cluster.bootstrap(1), "User:carol", "ledger");
    let carol = ("carol", "carol-secret");
    produce_gives(
        &cluster,
        &cluster.sasl_bootstrap(2),
        "ledger",
        carol,
        Ok(()),
    );
    let before = acl_list(&cluster.bootstrap(0));

    // Every node stops and starts again: the metadata comes back from the Raft log.
    cluster.restart_all();
    for i in 0..3 {
        produce_gives(
            &cluster,
            &cluster.sasl_bootstrap(i),
            "ledger",
            carol,
            Ok(()),
        );
        assert_eq!(acl_list(&cluster.bootstrap(i)), before, "node {}", i + 1);
    }
    // Nothing was written to the old per-node files, and the password is nowhere on disk.
    for i in 0..3 {
        let dir = cluster.dir(i);
        assert!(!dir.join("acls.json").exists() && !dir.join("credentials.json").exists());
        for file in files_under(dir) {
            let bytes = std::fs::read(&file).unwrap();
            assert!(
                !bytes
                    .windows(b"carol-secret".len())
                    .any(|w| w == b"carol-secret"),
                "the password is stored in {}",
                file.display()
            );
        }
    }
}

/// Writes the files an older node kept: WRITE on `imported` for `User:dave`, and dave's
/// credentials, on node 1 only.
fn old_files(i: usize, dir: &Path) {
    use basalt_broker::acl::{AclBinding, Operation, PatternType, Permission, ResourceType};
    if i != 0 {
        return;
    }
    basalt_broker::acl_store::AclStore::new(dir)
        .save(&[AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: "imported".into(),
            pattern_type: PatternType::Literal,
            principal: "User:dave".into(),
            host: "*".into(),
            operation: Operation::Write,
            permission: Permission::Allow,
        }])
        .unwrap();
    basalt_broker::credentials::CredentialStore::open(dir)
        .unwrap()
        .ensure_user("dave", "dave-secret")
        .unwrap();
}

#[test]
fn old_acl_and_credential_files_are_imported_once_into_the_cluster() {
    let mut cluster = Cluster::start_with(NodeSetup {
        prepare: Some(old_files),
        ..secured_setup()
    });
    create_topic(&cluster.bootstrap(0), "imported", 1, &[]);
    let dave = ("dave", "dave-secret");
    // Imported on node 1, in force on every node.
    for i in 0..3 {
        produce_gives(
            &cluster,
            &cluster.sasl_bootstrap(i),
            "imported",
            dave,
            Ok(()),
        );
    }
    let dir = cluster.dir(0);
    assert!(!dir.join("acls.json").exists() && dir.join("acls.json.imported").exists());
    assert!(
        !dir.join("credentials.json").exists() && dir.join("credentials.json.imported").exists()
    );
    // Once: an ACL removed after the import stays removed when node 1 starts again.
    revoke_write(&cluster.bootstrap(1), "User:dave", "imported");
    produce_gives(
        &cluster,
        &cluster.sasl_bootstrap(0),
        "imported",
        dave,
        Err(RDKafkaErrorCode::TopicAuthorizationFailed),
    );
    cluster.kill(0);
    cluster.restart(0);
    let acls = acl_list(&cluster.bootstrap(0));
    assert!(!acls.contains("User:dave"), "{acls}");
    produce_gives(
        &cluster,
        &cluster.sasl_bootstrap(0),
        "imported",
        dave,
        Err(RDKafkaErrorCode::TopicAuthorizationFailed),
    );
}

/// A single node (a quorum of one): the bootstrap user and the ACLs it manages survive a
/// restart, with no per-node file written.
#[test]
fn a_single_node_keeps_acls_and_users_in_its_metadata_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_basalt"));
    let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sasl = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = format!(
        "PLAINTEXT://{},SASL_PLAINTEXT://{}",
        plain.local_addr().unwrap(),
        sasl.local_addr().unwrap()
    );
    let sasl_addr = sasl.local_addr().unwrap().to_string();
    drop((plain, sasl));
    let args = [
        "--authorizer",
        "--super.users",
        "User:admin",
        "--sasl.enabled.mechanisms",
        "SCRAM-SHA-512",
    ];
    let admin = ("admin", "admin-secret");
    let start =
        |env: &[(&str, &str)]| ProcessBroker::start_at(bin, dir.path(), &listen, &args, env);
    let node = start(&[("BASALT_BOOTSTRAP_USER", "admin:admin-secret")]);
    let admin_cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&[
            "--brokers",
            &sasl_addr,
            "--security-protocol",
            "SASL_PLAINTEXT",
            "--sasl-mechanism",
            "SCRAM-SHA-512",
            "--sasl-username",
            admin.0,
            "--sasl-password",
            admin.1,
        ]);
        let (ok, stdout, stderr) = basalt(&all);
        assert!(ok, "basalt {all:?} failed: {stdout}{stderr}");
        stdout
    };
    admin_cli(&["topic", "create", "single", "--partitions", "1"]);
    admin_cli(&["user", "create", "erin", "--password", "erin-secret"]);
    admin_cli(&[
        "acl",
        "add",
        "--allow",
        "--principal",
        "User:erin",
        "--operation",
        "write",
        "--topic",
        "single",
    ]);
    let erin = ("erin", "erin-secret");
    assert_eq!(try_produce(&sasl_addr, "single", erin), Ok(()));
    let (status, log) = node.terminate();
    assert!(status.success(), "log:\n{log}");

    // No bootstrap user in the environment this time: the admin comes from the metadata.
    let node = start(&[]);
    let deadline = Instant::now() + TIMEOUT;
    while try_produce(&sasl_addr, "single", erin) != Ok(()) {
        assert!(Instant::now() < deadline, "log:\n{}", node.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let acls = admin_cli(&["acl", "list", "--json"]);
    assert!(acls.contains("User:erin"), "{acls}");
    assert!(!dir.path().join("acls.json").exists());
    assert!(!dir.path().join("credentials.json").exists());
    let (status, log) = node.terminate();
    assert!(status.success(), "log:\n{log}");
}

/// Nodes that replicate over their SASL_PLAINTEXT listener, logged in as `User:broker`, the
/// only super user: `User:ANONYMOUS` on PLAINTEXT is nobody.
fn inter_broker_setup() -> NodeSetup {
    NodeSetup {
        extra_args: [
            "--authorizer",
            "--super.users",
            "User:broker",
            "--sasl.enabled.mechanisms",
            "SCRAM-SHA-512",
            "--inter.broker.listener.name",
            "SASL_PLAINTEXT",
            "--sasl.mechanism.inter.broker.protocol",
            "SCRAM-SHA-512",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect(),
        env: vec![
            (
                "BASALT_BOOTSTRAP_USER".into(),
                "broker:broker-secret".into(),
            ),
            (
                "BASALT_INTER_BROKER_USER".into(),
                "broker:broker-secret".into(),
            ),
        ],
        sasl: true,
        ..NodeSetup::default()
    }
}

/// A librdkafka configuration for `bootstrap` logged in as the broker user.
fn as_broker(bootstrap: &str) -> rdkafka::ClientConfig {
    let mut c = rdkafka::ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    for (k, v) in login("broker", "broker-secret") {
        c.set(k, v);
    }
    c
}

#[test]
fn nodes_replicate_and_end_transactions_over_an_authenticated_inter_broker_listener() {
    use rdkafka::admin::{AdminClient, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    use rdkafka::{Message, Offset, TopicPartitionList};

    let cluster = Cluster::start_with(inter_broker_setup());
    let sasl = cluster.sasl_bootstrap(0);
    let admin: AdminClient<DefaultClientContext> = as_broker(&sasl).create().unwrap();
    eventually(&cluster, "the topic created as the broker user", || {
        let topic = NewTopic::new("replicated", 3, TopicReplication::Fixed(3))
            .set("min.insync.replicas", "2");
        let r = block_on(admin.create_topics(&[topic], &crate::common::admin_options())).ok()?;
        matches!(r.first(), Some(Ok(_))).then_some(())
    });
    // Every follower catches up: each partition has three in-sync replicas, which only
    // follower fetches over the SASL listener can give (the plaintext principal may not fetch
    // as a replica).
    let metadata: BaseConsumer = as_broker(&sasl).create().unwrap();
    eventually(&cluster, "three in-sync replicas everywhere", || {
        let md = metadata.fetch_metadata(Some("replicated"), TIMEOUT).ok()?;
        let t = md.topics().iter().find(|t| t.name() == "replicated")?;
        (t.partitions().len() == 3 && t.partitions().iter().all(|p| p.isr().len() == 3))
            .then_some(())
    });
    // acks=all through every leader, and a transaction over the three partitions (so over
    // three leaders: its markers go to the other nodes as WriteTxnMarkers).
    let p: ThreadedProducer<DefaultProducerContext> = as_broker(&sasl)
        .set("transactional.id", "inter-broker")
        .set("acks", "all")
        .create()
        .unwrap();
    p.init_transactions(TIMEOUT).unwrap();
    p.begin_transaction().unwrap();
    for part in 0..3 {
        p.send(
            BaseRecord::<(), str>::to("replicated")
                .partition(part)
                .payload("committed"),
        )
        .unwrap_or_else(|(e, _)| panic!("could not enqueue: {e}"));
    }
    p.commit_transaction(TIMEOUT).unwrap();
    let reader: BaseConsumer = as_broker(&sasl)
        .set("group.id", "inter-broker-check")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for part in 0..3 {
        tpl.add_partition_offset("replicated", part, Offset::Beginning)
            .unwrap();
    }
    reader.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while got.len() < 3 {
        assert!(Instant::now() < deadline, "read committed only {got:?}");
        if let Some(m) = reader.poll(Duration::from_millis(100)) {
            got.push(m.unwrap().partition());
        }
    }
    got.sort();
    assert_eq!(got, vec![0, 1, 2]);
    // The plaintext listener's anonymous clients are not super users here.
    let code = try_produce_plain(&cluster.bootstrap(1), "replicated");
    assert_eq!(code, Err(RDKafkaErrorCode::TopicAuthorizationFailed));
}

/// Producing one record to `topic` through a PLAINTEXT `bootstrap`, as `User:ANONYMOUS`.
fn try_produce_plain(bootstrap: &str, topic: &str) -> Result<(), RDKafkaErrorCode> {
    let p = producer(bootstrap, &[("message.timeout.ms", "5000")]);
    produce_one(&p, topic, b"anonymous")
}

#[test]
fn the_metadata_quorum_speaks_mutual_tls_and_refuses_plain_connections() {
    use std::io::{Read, Write};

    let ca = basalt_testkit::TestCa::new("quorum");
    let node = ca.node("node");
    let setup = NodeSetup {
        extra_args: vec![
            "--controller.security.protocol".into(),
            "SSL".into(),
            "--ssl.certificate.location".into(),
            node.cert.display().to_string(),
            "--ssl.key.location".into(),
            node.key.display().to_string(),
            "--ssl.ca.location".into(),
            ca.ca_pem().display().to_string(),
        ],
        ..NodeSetup::default()
    };
    let cluster = Cluster::start_with(setup);
    // The quorum formed over TLS: topics are placed and replicated across the nodes.
    let b = cluster.bootstrap(0);
    create_topic(&b, "over-tls", 3, &[]);
    let p = producer(&cluster.bootstrap(1), &[("acks", "all")]);
    for part in 0..3 {
        crate::common::send_one(
            &p,
            FutureRecord::to("over-tls")
                .partition(part)
                .payload(b"quorum".as_slice()),
        );
    }
    // A plain TCP peer gets no answer: its frame is never read as a quorum request.
    let quorum_addr = cluster
        .voters
        .split(',')
        .next()
        .and_then(|v| v.split_once('@'))
        .map(|(_, addr)| addr.to_owned())
        .unwrap();
    let mut plain = std::net::TcpStream::connect(&quorum_addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let frame = br#"{"to":1,"request":{"Propose":{"FenceNode":{"id":2}}}}"#;
    let mut bytes = (frame.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(frame);
    let _ = plain.write_all(&bytes);
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    // Whatever came back is a TLS alert at most, never a length-prefixed JSON answer.
    assert!(
        !String::from_utf8_lossy(&answer).contains('{'),
        "a plain peer got an answer: {answer:?}"
    );
    // And node 2 was not fenced by it.
    eventually(&cluster, "node 2 still live", || {
        crate::cluster::broker_ids(&cluster.bootstrap(0))
            .contains(&2)
            .then_some(())
    });
    assert!(
        cluster
            .logs()
            .contains("refusing a quorum connection: TLS failed"),
        "the refusal is logged"
    );
}
