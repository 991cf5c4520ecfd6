//! Replays every file of the fuzz corpus (`tests/corpus/decode_request/`) through the same path
//! as the `decode_request` fuzz target, and (on request) rewrites the seed part of the corpus.
//!
//! Seeds are written by `BASALT_WRITE_SEED_CORPUS=1 cargo test -p basalt-protocol --test it
//! corpus::write_seed_corpus`; files the fuzzer found are kept alongside them.

use std::path::PathBuf;

use basalt_protocol::{
    FrameDecoder, FrameStatus, RequestBody, RequestHeader, decode_request_frame,
    encode_request_frame,
};
use bytes::{Bytes, BytesMut};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/decode_request")
}

/// The fuzz target's logic: decode the input as a frame body and as a stream of frames; whatever
/// decodes must re-encode, re-decode to an equal request and re-encode to identical bytes.
pub fn check_input(data: &[u8]) {
    check_frame(Bytes::copy_from_slice(data));
    let mut buf = BytesMut::from(data);
    let mut decoder = FrameDecoder::new(1 << 20);
    while let Ok(FrameStatus::Frame(frame)) = decoder.decode(&mut buf) {
        check_frame(frame);
    }
}

fn check_frame(frame: Bytes) {
    let Ok((header, body)) = decode_request_frame(frame) else {
        return;
    };
    let encoded = encode_request_frame(&header, &body).expect("decoded request must re-encode");
    let (header2, body2) =
        decode_request_frame(encoded.slice(4..)).expect("re-encoded request must decode");
    assert_eq!(header, header2);
    // Floats may be NaN, so compare the debug form when the values are not equal.
    assert!(body == body2 || format!("{body:?}") == format!("{body2:?}"));
    let encoded2 = encode_request_frame(&header2, &body2).expect("second re-encode");
    assert_eq!(encoded, encoded2);
}

#[test]
fn replay_corpus() {
    let dir = corpus_dir();
    let mut count = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        let data = std::fs::read(&path).unwrap();
        check_input(&data);
        count += 1;
    }
    assert!(count >= 20, "corpus has only {count} files");
}

#[test]
fn seed_corpus_requests_decode() {
    // Every seed named after an API decodes successfully.
    for entry in std::fs::read_dir(corpus_dir()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("seed-") {
            continue;
        }
        let data = std::fs::read(entry.path()).unwrap();
        let res = decode_request_frame(Bytes::from(data));
        assert!(res.is_ok(), "{name}: {res:?}");
    }
}

#[test]
fn write_seed_corpus() {
    if std::env::var_os("BASALT_WRITE_SEED_CORPUS").is_none() {
        println!("skipped: set BASALT_WRITE_SEED_CORPUS=1 to rewrite the seed corpus");
        return;
    }
    use crate::samples::*;
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, version: i16, body: RequestBody| {
        let header = RequestHeader {
            request_api_key: body.api_key().key(),
            request_api_version: version,
            correlation_id: 1,
            client_id: Some("seed".into()),
            unknown_tagged_fields: Vec::new(),
        };
        let frame = encode_request_frame(&header, &body).unwrap();
        std::fs::write(dir.join(format!("seed-{name}-v{version}.bin")), &frame[4..]).unwrap();
    };
    for v in [0, 4, 9, 12, 13] {
        write("metadata", v, metadata_request__metadata_request(v).into());
    }
    for v in [3, 7, 9, 12, 13] {
        write("produce", v, produce_request__produce_request(v).into());
    }
    for v in [4, 11, 12, 15, 18] {
        write("fetch", v, fetch_request__fetch_request(v).into());
    }
    for v in [0, 2, 3, 4] {
        write(
            "api-versions",
            v,
            api_versions_request__api_versions_request(v).into(),
        );
    }
    for v in [1, 5, 6, 11] {
        write(
            "list-offsets",
            v,
            list_offsets_request__list_offsets_request(v).into(),
        );
    }
    for v in [2, 5, 7] {
        write(
            "create-topics",
            v,
            create_topics_request__create_topics_request(v).into(),
        );
    }
    for v in [0, 5, 6, 9] {
        write(
            "join-group",
            v,
            join_group_request__join_group_request(v).into(),
        );
    }
    for v in [2, 8, 10] {
        write(
            "offset-commit",
            v,
            offset_commit_request__offset_commit_request(v).into(),
        );
    }
    for v in [1, 6, 8, 10] {
        write(
            "offset-fetch",
            v,
            offset_fetch_request__offset_fetch_request(v).into(),
        );
    }
    for v in [0, 4, 6] {
        write(
            "find-coordinator",
            v,
            find_coordinator_request__find_coordinator_request(v).into(),
        );
    }
    write(
        "consumer-group-heartbeat",
        0,
        consumer_group_heartbeat_request__consumer_group_heartbeat_request(0).into(),
    );
    write(
        "sync-group",
        5,
        sync_group_request__sync_group_request(5).into(),
    );
    write(
        "heartbeat",
        4,
        heartbeat_request__heartbeat_request(4).into(),
    );
    write(
        "init-producer-id",
        5,
        init_producer_id_request__init_producer_id_request(5).into(),
    );
    write(
        "share-fetch",
        1,
        share_fetch_request__share_fetch_request(1).into(),
    );
    write(
        "describe-topic-partitions",
        0,
        describe_topic_partitions_request__describe_topic_partitions_request(0).into(),
    );
}
