//! [`TestBroker`]: the broker and its network server on a private tokio runtime in this process.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use basalt_broker::{Broker, BrokerConfig};
use basalt_server::{ListenerConfig, ServerLimits};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a stop may take before the test fails instead of hanging.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// A broker serving the Kafka protocol on a free loopback port, with its data in a temporary
/// directory. Dropping it stops the server, syncs the data and removes the directory.
pub struct TestBroker {
    addr: SocketAddr,
    listeners: Vec<(String, SocketAddr)>,
    broker: Arc<Broker>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    runtime: Option<Runtime>,
    dir: tempfile::TempDir,
}

impl TestBroker {
    /// Starts a broker with the default configuration.
    pub fn start() -> TestBroker {
        TestBroker::start_with(|_| {})
    }

    /// Starts a broker whose configuration `configure` may change. The advertised address is
    /// already set to the bound port when `configure` runs, so it can point clients elsewhere
    /// (at a proxy, say).
    pub fn start_with(configure: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
        TestBroker::start_listeners(&["PLAINTEXT"], configure, |_, _| {
            ListenerConfig::plaintext()
        })
    }

    /// Stops the broker cleanly and starts a new one over the same data directory, configured
    /// by `configure` (on a new port).
    pub fn restart_with(mut self, configure: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
        self.stop_inner(true);
        let dir = std::mem::replace(
            &mut self.dir,
            tempfile::tempdir().expect("cannot create a temporary data directory"),
        );
        TestBroker::start_listeners_in(
            dir,
            &["PLAINTEXT"],
            ServerLimits::default(),
            configure,
            |_, _| ListenerConfig::plaintext(),
        )
    }

    /// Starts a broker with one listener per name in `names`, each on its own free loopback
    /// port and advertising it; `listener` builds each one's settings (it gets the broker, for
    /// its credential store, and the name). The first listener is [`TestBroker::addr`].
    pub fn start_listeners(
        names: &[&str],
        configure: impl FnOnce(&mut BrokerConfig),
        listener: impl FnMut(&Arc<Broker>, &str) -> ListenerConfig,
    ) -> TestBroker {
        TestBroker::start_limited(names, ServerLimits::default(), configure, listener)
    }

    /// As [`TestBroker::start_listeners`], under the broker-wide connection `limits`
    /// (`max.connections`, `max.connections.per.ip`, `max.connection.creation.rate`, ...; the
    /// shutdown grace period is always short).
    pub fn start_limited(
        names: &[&str],
        limits: ServerLimits,
        configure: impl FnOnce(&mut BrokerConfig),
        listener: impl FnMut(&Arc<Broker>, &str) -> ListenerConfig,
    ) -> TestBroker {
        let dir = tempfile::tempdir().expect("cannot create a temporary data directory");
        TestBroker::start_listeners_in(dir, names, limits, configure, listener)
    }

    fn start_listeners_in(
        dir: tempfile::TempDir,
        names: &[&str],
        limits: ServerLimits,
        configure: impl FnOnce(&mut BrokerConfig),
        mut listener: impl FnMut(&Arc<Broker>, &str) -> ListenerConfig,
    ) -> TestBroker {
        assert!(!names.is_empty(), "a broker needs a listener");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("test-broker")
            .enable_all()
            .build()
            .expect("cannot build the broker's runtime");
        let mut bound = Vec::new();
        for name in names {
            let l = runtime
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .expect("cannot bind 127.0.0.1:0");
            let addr = l.local_addr().expect("listener has no address");
            bound.push((name.to_string(), l, addr));
        }
        let addr = bound[0].2;
        let mut config = BrokerConfig {
            advertised_host: addr.ip().to_string(),
            advertised_port: i32::from(addr.port()),
            ..BrokerConfig::default()
        };
        if names.len() > 1 {
            for (name, _, a) in &bound {
                config
                    .advertised_listeners
                    .insert(name.clone(), (a.ip().to_string(), i32::from(a.port())));
            }
        }
        configure(&mut config);
        let broker = Broker::open(dir.path(), config)
            .unwrap_or_else(|e| panic!("cannot open a broker in {}: {e}", dir.path().display()));
        let listeners: Vec<(String, SocketAddr)> =
            bound.iter().map(|(n, _, a)| (n.clone(), *a)).collect();
        let served: Vec<_> = bound
            .into_iter()
            .map(|(name, l, _)| {
                let mut config = listener(&broker, &name);
                config.name = name;
                (l, config)
            })
            .collect();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = {
            let _guard = runtime.enter();
            broker.spawn_background();
            let limits = ServerLimits {
                shutdown_grace: Duration::from_secs(5),
                ..limits
            };
            runtime.spawn(basalt_server::serve_listeners(
                served,
                Arc::clone(&broker),
                limits,
                async move {
                    let _ = stop_rx.await;
                },
            ))
        };
        TestBroker {
            addr,
            listeners,
            broker,
            stop: Some(stop_tx),
            server: Some(server),
            runtime: Some(runtime),
            dir,
        }
    }

    /// The address the broker listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the listener named `name`.
    pub fn listener_addr(&self, name: &str) -> SocketAddr {
        self.listeners
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("no listener named {name}"))
    }

    /// `bootstrap.servers` for a client.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// The broker itself, to look at its state directly.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// The broker's data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server, waits for its connections to drain and syncs the data; panics if that
    /// does not happen in time or the sync fails.
    pub fn stop(mut self) {
        self.stop_inner(true);
    }

    fn stop_inner(&mut self, strict: bool) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let joined =
                runtime.block_on(async { tokio::time::timeout(STOP_TIMEOUT, server).await });
            if strict {
                assert!(
                    matches!(joined, Ok(Ok(()))),
                    "the server did not stop cleanly"
                );
            }
        }
        // Storage closes on a blocking thread of the runtime it was opened under, as in
        // `basalt serve`.
        let broker = Arc::clone(&self.broker);
        let closed = runtime
            .block_on(async { tokio::task::spawn_blocking(move || broker.shutdown()).await });
        if strict {
            match closed {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("broker shutdown failed: {e}"),
                Err(e) => panic!("broker shutdown panicked: {e}"),
            }
        }
        runtime.shutdown_timeout(Duration::from_secs(5));
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        // Not strict: a test that is already panicking must not panic again here.
        self.stop_inner(false);
    }
}
