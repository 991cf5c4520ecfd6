//! [`CuttingProxy`]: forwards TCP connections to an upstream address and cuts some of them after
//! a pseudo-random number of bytes, in the middle of a request or a response.
//!
//! A cut closes both sides at once, so a client sees its connection drop with requests in flight
//! whose effect it cannot know: the case idempotent producers exist for.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::watch;

/// Which connections are cut, and where.
#[derive(Debug, Clone, Copy)]
pub struct CutPlan {
    /// Fewest bytes (both directions together) a cut connection forwards.
    pub min_bytes: u64,
    /// Most bytes a cut connection forwards.
    pub max_bytes: u64,
    /// How many connections, the first ones accepted, get a byte budget and are cut when they
    /// spend it; later ones are forwarded untouched, so clients always get through in the end.
    pub max_cuts: u64,
    /// Seed of the byte budgets, so a failure can be replayed.
    pub seed: u64,
}

/// A bound proxy that does not forward yet: its address can be advertised before the upstream
/// exists.
pub struct PendingProxy {
    runtime: Runtime,
    listener: TcpListener,
    addr: SocketAddr,
}

/// A running proxy; dropping it stops it and closes its connections.
pub struct CuttingProxy {
    runtime: Option<Runtime>,
    addr: SocketAddr,
    stats: Arc<Stats>,
}

#[derive(Debug, Default)]
struct Stats {
    connections: AtomicU64,
    cuts: AtomicU64,
    /// Set once no new connection may be cut any more.
    calm: AtomicBool,
}

impl CuttingProxy {
    /// Binds a proxy on a free loopback port.
    pub fn bind() -> PendingProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("cutting-proxy")
            .enable_all()
            .build()
            .expect("cannot build the proxy's runtime");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("cannot bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("listener has no address");
        PendingProxy {
            runtime,
            listener,
            addr,
        }
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.stats.connections.load(Ordering::Relaxed)
    }

    /// Connections cut so far.
    pub fn cuts(&self) -> u64 {
        self.stats.cuts.load(Ordering::Relaxed)
    }

    /// Forwards connections accepted from now on untouched.
    pub fn stop_cutting(&self) {
        self.stats.calm.store(true, Ordering::Relaxed);
    }
}

impl PendingProxy {
    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts forwarding every accepted connection to `upstream`, cutting as `plan` says.
    pub fn forward_to(self, upstream: SocketAddr, plan: CutPlan) -> CuttingProxy {
        let stats = Arc::new(Stats::default());
        let PendingProxy {
            runtime,
            listener,
            addr,
        } = self;
        {
            let stats = Arc::clone(&stats);
            runtime.spawn(async move {
                let mut rng = plan.seed | 1;
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    let n = stats.connections.fetch_add(1, Ordering::Relaxed);
                    let budget = if n < plan.max_cuts && !stats.calm.load(Ordering::Relaxed) {
                        let span = plan.max_bytes.saturating_sub(plan.min_bytes).max(1);
                        Some(plan.min_bytes + xorshift(&mut rng) % span)
                    } else {
                        None
                    };
                    let stats = Arc::clone(&stats);
                    tokio::spawn(async move {
                        let Ok(server) = TcpStream::connect(upstream).await else {
                            return;
                        };
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        if relay(client, server, budget).await {
                            stats.cuts.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
            });
        }
        CuttingProxy {
            runtime: Some(runtime),
            addr,
            stats,
        }
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Relays both directions until either side closes or the budget runs out; returns whether the
/// connection was cut.
async fn relay(client: TcpStream, server: TcpStream, budget: Option<u64>) -> bool {
    let remaining = Arc::new(AtomicI64::new(
        budget.map_or(i64::MAX, |b| i64::try_from(b).unwrap_or(i64::MAX)),
    ));
    let (done_tx, done_rx) = watch::channel(false);
    let done_tx = Arc::new(done_tx);
    let (client_r, client_w) = client.into_split();
    let (server_r, server_w) = server.into_split();
    let up = tokio::spawn(pump(
        client_r,
        server_w,
        Arc::clone(&remaining),
        Arc::clone(&done_tx),
        done_rx.clone(),
    ));
    let down = tokio::spawn(pump(
        server_r,
        client_w,
        Arc::clone(&remaining),
        Arc::clone(&done_tx),
        done_rx,
    ));
    let cut_up = up.await.unwrap_or(false);
    let cut_down = down.await.unwrap_or(false);
    cut_up || cut_down
}

/// Copies `from` to `to`, spending the shared budget; on a cut, forwards only what the budget
/// allows. Returns whether this direction made the cut.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    remaining: Arc<AtomicI64>,
    done: Arc<watch::Sender<bool>>,
    mut done_rx: watch::Receiver<bool>,
) -> bool {
    let mut buf = vec![0u8; 16 * 1024];
    let mut cut = false;
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = done_rx.changed() => break,
        };
        let before = remaining.fetch_sub(n as i64, Ordering::AcqRel);
        if before < n as i64 {
            let keep = usize::try_from(before.max(0)).unwrap_or(0);
            let _ = to.write_all(&buf[..keep]).await;
            cut = true;
            break;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = done.send(true);
    cut
}
