//! DescribeCluster, DescribeLogDirs and the advertised version table.

use basalt_protocol::messages::api_versions_request::ApiVersionsRequest;
use basalt_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use basalt_protocol::messages::describe_log_dirs_request::{
    DescribableLogDirTopic, DescribeLogDirsRequest,
};
use basalt_protocol::{ApiKey, ErrorCode, RequestBody, ResponseBody};

use crate::{call, create, open, produce};

#[tokio::test]
async fn describe_cluster_reports_this_node() {
    let (_dir, broker) = open(|c| {
        c.node_id = 5;
        c.cluster_id = "abc".into();
        c.advertised_port = 19092;
    });
    for version in 0..=2 {
        let req = DescribeClusterRequest {
            include_cluster_authorized_operations: true,
            ..DescribeClusterRequest::default()
        };
        let ResponseBody::DescribeCluster(r) =
            call(&broker, version, RequestBody::DescribeCluster(req)).await
        else {
            panic!()
        };
        assert_eq!(r.error_code, 0);
        assert_eq!(r.cluster_id, "abc");
        assert_eq!(r.controller_id, 5);
        assert_eq!(r.endpoint_type, 1);
        assert_eq!(r.brokers.len(), 1);
        assert_eq!((r.brokers[0].broker_id, r.brokers[0].port), (5, 19092));
        assert_ne!(r.cluster_authorized_operations, i32::MIN);
        assert_ne!(r.cluster_authorized_operations & (1 << 10), 0);
    }
    let req = DescribeClusterRequest {
        endpoint_type: 2,
        ..DescribeClusterRequest::default()
    };
    let ResponseBody::DescribeCluster(r) =
        call(&broker, 1, RequestBody::DescribeCluster(req)).await
    else {
        panic!()
    };
    assert_eq!(r.error_code, i16::from(ErrorCode::MismatchedEndpointType));
}

#[tokio::test]
async fn describe_log_dirs_lists_partition_sizes() {
    let (dir, broker) = open(|_| {});
    create(&broker, "t", 2, &[]);
    create(&broker, "u", 1, &[]);
    produce(&broker, "t", 1, 3).await;
    for version in 1..=4 {
        let ResponseBody::DescribeLogDirs(r) = call(
            &broker,
            version,
            RequestBody::DescribeLogDirs(DescribeLogDirsRequest {
                topics: None,
                ..Default::default()
            }),
        )
        .await
        else {
            panic!()
        };
        assert_eq!(r.results.len(), 1);
        let d = &r.results[0];
        assert_eq!(d.error_code, 0);
        assert_eq!(
            std::path::Path::new(&d.log_dir),
            std::fs::canonicalize(dir.path()).unwrap()
        );
        assert_eq!(d.topics.len(), 2);
        let t = d.topics.iter().find(|t| t.name == "t").unwrap();
        assert_eq!(t.partitions.len(), 2);
        let p1 = t
            .partitions
            .iter()
            .find(|p| p.partition_index == 1)
            .unwrap();
        assert!(p1.partition_size > 0);
        let p0 = t
            .partitions
            .iter()
            .find(|p| p.partition_index == 0)
            .unwrap();
        assert_eq!(p0.partition_size, 0);
        if version >= 4 {
            assert!(d.total_bytes > 0 && d.usable_bytes >= 0 && d.usable_bytes <= d.total_bytes);
        } else {
            assert_eq!((d.total_bytes, d.usable_bytes), (-1, -1));
        }
    }
    let req = DescribeLogDirsRequest {
        topics: Some(vec![
            DescribableLogDirTopic {
                topic: "t".into(),
                partitions: vec![1, 7],
                ..DescribableLogDirTopic::default()
            },
            DescribableLogDirTopic {
                topic: "missing".into(),
                partitions: vec![0],
                ..DescribableLogDirTopic::default()
            },
        ]),
        ..Default::default()
    };
    let ResponseBody::DescribeLogDirs(r) =
        call(&broker, 4, RequestBody::DescribeLogDirs(req)).await
    else {
        panic!()
    };
    let topics = &r.results[0].topics;
    assert_eq!(topics.len(), 1);
    assert_eq!(topics[0].partitions.len(), 1);
    assert_eq!(topics[0].partitions[0].partition_index, 1);
}

#[tokio::test]
async fn api_versions_advertise_the_admin_apis() {
    let (_dir, broker) = open(|_| {});
    let ResponseBody::ApiVersions(r) = call(
        &broker,
        3,
        RequestBody::ApiVersions(ApiVersionsRequest::default()),
    )
    .await
    else {
        panic!()
    };
    let range = |k: ApiKey| {
        r.api_keys
            .iter()
            .find(|a| a.api_key == k.key())
            .map(|a| (a.min_version, a.max_version))
    };
    assert_eq!(range(ApiKey::DeleteRecords), Some((0, 2)));
    assert_eq!(range(ApiKey::OffsetForLeaderEpoch), Some((2, 4)));
    assert_eq!(range(ApiKey::DescribeConfigs), Some((1, 4)));
    assert_eq!(range(ApiKey::AlterConfigs), Some((0, 2)));
    assert_eq!(range(ApiKey::DescribeLogDirs), Some((1, 4)));
    assert_eq!(range(ApiKey::CreatePartitions), Some((0, 3)));
    assert_eq!(range(ApiKey::IncrementalAlterConfigs), Some((0, 1)));
    assert_eq!(range(ApiKey::DescribeCluster), Some((0, 2)));
}
