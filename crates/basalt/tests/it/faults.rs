//! Faults on the wire: connections cut in the middle of requests and responses must not make an
//! idempotent producer lose or duplicate records, and garbage or truncated frames on one socket
//! must not disturb the clients on the others.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use basalt_testkit::{CutPlan, CuttingProxy, TestBroker};
use rdkafka::producer::FutureRecord;

use crate::common::{block_on, consume_exactly, producer, text};

#[test]
fn idempotent_producer_survives_cut_connections_without_duplicates_or_gaps() {
    let pending = CuttingProxy::bind();
    let proxy_port = i32::from(pending.addr().port());
    // Clients learn the proxy's address from metadata, so every connection goes through it.
    let broker = TestBroker::start_with(|c| c.advertised_port = proxy_port);
    let proxy = pending.forward_to(
        broker.addr(),
        CutPlan {
            min_bytes: 1_500,
            max_bytes: 40_000,
            max_cuts: 30,
            seed: 0x5eed_0001,
        },
    );
    let b = proxy.addr().to_string();
    broker
        .broker()
        .create_topic("flaky", 2, -1, BTreeMap::new(), false)
        .unwrap();

    let producer = producer(
        &b,
        &[
            ("enable.idempotence", "true"),
            ("linger.ms", "2"),
            ("batch.num.messages", "20"),
            ("max.in.flight.requests.per.connection", "5"),
            ("message.timeout.ms", "60000"),
        ],
    );
    const PER_PARTITION: usize = 1000;
    let padding = "p".repeat(100);
    let mut futures = Vec::new();
    for seq in 0..PER_PARTITION {
        for p in 0..2 {
            let value = format!("{p}:{seq}:{padding}");
            let f = producer
                .send_result(
                    FutureRecord::<[u8], [u8]>::to("flaky")
                        .partition(p)
                        .payload(value.as_bytes()),
                )
                .unwrap_or_else(|(e, _)| panic!("enqueue: {e}"));
            futures.push((p, seq, f));
        }
    }
    block_on(async {
        for (p, seq, f) in futures {
            let d = f
                .await
                .unwrap()
                .unwrap_or_else(|(e, _)| panic!("delivery of {p}:{seq}: {e}"));
            assert_eq!(
                (d.partition, d.offset),
                (p, seq as i64),
                "offset of {p}:{seq}"
            );
        }
    });
    let cuts = proxy.cuts();
    assert!(
        cuts > 0,
        "the proxy cut no connection: the test proved nothing"
    );
    eprintln!(
        "{cuts} of {} connections cut while producing",
        proxy.connections()
    );

    proxy.stop_cutting();
    let got = consume_exactly(&b, "flaky", &[(0, PER_PARTITION), (1, PER_PARTITION)]);
    for (p, records) in &got {
        for (seq, m) in records.iter().enumerate() {
            assert_eq!(
                text(m),
                format!("{p}:{seq}:{padding}"),
                "partition {p} offset {seq} after {cuts} cuts"
            );
        }
    }
}

/// Bytes that are not a valid request, each sent on a fresh connection; `half_close` says
/// whether the sender then stops writing (so the broker sees a frame cut short by EOF).
fn garbage(round: u64) -> Vec<(&'static str, Vec<u8>, bool)> {
    let mut state = round.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let random: Vec<u8> = (0..2_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let header = |api_key: i16, version: i16, client_id_len: i16| {
        let mut body = Vec::new();
        body.extend_from_slice(&api_key.to_be_bytes());
        body.extend_from_slice(&version.to_be_bytes());
        body.extend_from_slice(&7i32.to_be_bytes());
        body.extend_from_slice(&client_id_len.to_be_bytes());
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        frame
    };
    vec![
        ("negative size", vec![0xff; 64], false),
        (
            "oversized size",
            {
                let mut f = i32::MAX.to_be_bytes().to_vec();
                f.extend_from_slice(&[0; 64]);
                f
            },
            false,
        ),
        ("empty frame", vec![0, 0, 0, 0], false),
        (
            "client id longer than the frame",
            header(18, 0, 0x7fff),
            false,
        ),
        ("unknown api key", header(999, 0, -1), false),
        ("metadata body missing", header(3, 12, -1), false),
        (
            "truncated frame",
            {
                let mut f = 1_000i32.to_be_bytes().to_vec();
                f.extend_from_slice(&random[..100]);
                f
            },
            true,
        ),
        ("random bytes", random.clone(), true),
        (
            "random body",
            {
                let mut f = 1_500i32.to_be_bytes().to_vec();
                f.extend_from_slice(&random[..1_500]);
                f
            },
            false,
        ),
    ]
}

/// Sends `bytes` on a new connection and waits (bounded) for the broker to close it.
fn send_garbage(addr: SocketAddr, what: &str, bytes: &[u8], half_close: bool) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // The broker may close before reading everything; a reset here is fine.
    let _ = s.write_all(bytes);
    if half_close {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut sink = [0u8; 4096];
    loop {
        match s.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
            Err(e) => panic!("{what}: the broker did not close the connection: {e}"),
        }
    }
}

#[test]
fn garbage_on_one_socket_does_not_disturb_other_clients() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    let addr = broker.addr();
    let done = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicUsize::new(0));
    let attacker = {
        let done = Arc::clone(&done);
        let rounds = Arc::clone(&rounds);
        std::thread::spawn(move || {
            // At least a few full rounds, at most a bounded number.
            for round in 0..200u64 {
                if done.load(Ordering::Relaxed) && round >= 3 {
                    break;
                }
                for (what, bytes, half_close) in garbage(round) {
                    send_garbage(addr, what, &bytes, half_close);
                }
                rounds.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    let producer = producer(&b, &[("enable.idempotence", "true")]);
    const N: usize = 500;
    let futures: Vec<_> = (0..N)
        .map(|i| {
            producer
                .send_result(
                    FutureRecord::<[u8], [u8]>::to("calm").payload(format!("m{i}").as_bytes()),
                )
                .unwrap_or_else(|(e, _)| panic!("enqueue: {e}"))
        })
        .collect();
    block_on(async {
        for f in futures {
            f.await
                .unwrap()
                .unwrap_or_else(|(e, _)| panic!("delivery: {e}"));
        }
    });
    let got = consume_exactly(&b, "calm", &[(0, N)]);
    done.store(true, Ordering::Relaxed);
    attacker.join().expect("the garbage sender failed");
    assert!(rounds.load(Ordering::Relaxed) >= 3);
    let values: Vec<&str> = got[&0].iter().map(text).collect();
    let expected: Vec<String> = (0..N).map(|i| format!("m{i}")).collect();
    assert_eq!(values, expected);
}
