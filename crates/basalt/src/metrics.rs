//! The Prometheus endpoint of `basalt serve` (`--metrics.listen HOST:PORT`, `GET /metrics`).
//!
//! The `metrics` facade with the Prometheus recorder (rendered here, from an axum route, not by
//! the exporter's own listener), and the cluster gauges Kafka operators watch, under Kafka's
//! names, refreshed every second from this node's metadata image:
//! - `basalt_active_controller_count`: 1 on the node that leads the metadata quorum, else 0;
//! - `basalt_offline_partitions_count`: partitions with no live leader, reported by the active
//!   controller only (0 elsewhere), as Kafka does;
//! - `basalt_under_replicated_partitions`: partitions this node leads whose ISR is smaller than
//!   their replica set;
//! - `basalt_leader_count` and `basalt_partition_count`: partitions this node leads and holds.
//!
//! Invariant `MET-1`: the endpoint only reads; a scrape never blocks the broker (the gauges are
//! set by their own task, and rendering takes the recorder's snapshot).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use basalt_broker::Broker;
use basalt_cluster::metadata::{MetadataImage, NodeId};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Errors of starting the endpoint.
type Error = Box<dyn std::error::Error + Send + Sync>;

/// How often the cluster gauges are recomputed.
const REFRESH: Duration = Duration::from_secs(1);

/// Installs the Prometheus recorder, binds `listen` and serves `/metrics` until the process
/// ends; the gauges are refreshed from `broker` every [`REFRESH`].
pub async fn serve(listen: &str, broker: Arc<Broker>) -> Result<std::net::SocketAddr, Error> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen for metrics on {listen}: {e}"))?;
    let local = listener.local_addr()?;
    let app = Router::new().route("/metrics", get(move || render(handle.clone())));
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::warn!(error = %err, "the metrics endpoint stopped");
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(REFRESH);
        loop {
            tick.tick().await;
            refresh(&broker);
        }
    });
    tracing::info!(listen = %local, "serving metrics at /metrics");
    Ok(local)
}

async fn render(handle: PrometheusHandle) -> String {
    handle.render()
}

/// The cluster gauges of one node.
#[derive(Debug, Default, PartialEq, Eq)]
struct ClusterGauges {
    active_controller: u64,
    offline: u64,
    under_replicated: u64,
    leader_of: u64,
    replica_of: u64,
}

fn refresh(broker: &Broker) {
    let (Some(link), Some(image)) = (broker.cluster(), broker.image()) else {
        return;
    };
    let controller = link.quorum.leader() == Some(link.node_id);
    let g = gauges(&image, link.node_id, controller);
    metrics::gauge!("basalt_active_controller_count").set(g.active_controller as f64);
    metrics::gauge!("basalt_offline_partitions_count").set(g.offline as f64);
    metrics::gauge!("basalt_under_replicated_partitions").set(g.under_replicated as f64);
    metrics::gauge!("basalt_leader_count").set(g.leader_of as f64);
    metrics::gauge!("basalt_partition_count").set(g.replica_of as f64);
}

fn gauges(image: &MetadataImage, node: NodeId, controller: bool) -> ClusterGauges {
    let live = |id: &NodeId| image.nodes.get(id).is_some_and(|n| !n.fenced);
    let mut g = ClusterGauges {
        active_controller: u64::from(controller),
        ..ClusterGauges::default()
    };
    for topic in image.topics.values() {
        for p in &topic.partitions {
            let led_here = p.leader == Some(node);
            if controller && !p.leader.as_ref().is_some_and(live) {
                g.offline += 1;
            }
            if led_here {
                g.leader_of += 1;
                if p.isr.len() < p.replicas.len() {
                    g.under_replicated += 1;
                }
            }
            if p.replicas.contains(&node) {
                g.replica_of += 1;
            }
        }
    }
    g
}

#[cfg(test)]
mod tests {
    use basalt_cluster::metadata::{NodeRecord, PartitionRecord, TopicId, TopicRecord};

    use super::*;

    fn partition(leader: Option<NodeId>, replicas: &[NodeId], isr: &[NodeId]) -> PartitionRecord {
        PartitionRecord {
            leader,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader_epoch: 0,
            partition_epoch: 0,
            reassignment: None,
        }
    }

    #[test]
    fn gauges_follow_kafkas_definitions() {
        let mut image = MetadataImage::default();
        for (id, fenced) in [(1, false), (2, false), (3, true)] {
            image.nodes.insert(
                id,
                NodeRecord {
                    id,
                    incarnation: 1,
                    endpoints: Vec::new(),
                    rack: None,
                    fenced,
                    registered_ms: 0,
                    last_heartbeat_ms: 0,
                },
            );
        }
        image.topics.insert(
            "t".into(),
            TopicRecord {
                partitions: vec![
                    partition(Some(1), &[1, 2], &[1]),
                    partition(Some(1), &[1], &[1]),
                    partition(Some(3), &[3], &[3]),
                    partition(None, &[2], &[]),
                ],
                id: TopicId([7; 16]),
                name: "t".into(),
                configs: Default::default(),
            },
        );
        assert_eq!(
            gauges(&image, 1, true),
            ClusterGauges {
                active_controller: 1,
                offline: 2,
                under_replicated: 1,
                leader_of: 2,
                replica_of: 2,
            }
        );
        // Only the active controller reports offline partitions.
        assert_eq!(gauges(&image, 2, false).offline, 0);
        assert_eq!(gauges(&image, 2, false).replica_of, 2);
    }
}
