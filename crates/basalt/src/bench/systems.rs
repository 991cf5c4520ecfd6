//! The systems `basalt bench compare` measures and how each is run here: found on `PATH` (or
//! installed with `--install`), started as a child process on a free loopback port with its
//! data in a directory of its own, waited for until it answers its protocol, and stopped with
//! SIGTERM (killed if it lingers).

use std::fs::{self, File};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::ValueEnum;

use super::Result;
use super::peers::{amqp_connect, redis_connection};
use super::process;

/// Longest wait for a system to serve after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// Longest wait for a system to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A name `--systems` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum Choice {
    /// Both Basalt rows.
    Basalt,
    BasaltAlways,
    BasaltOs,
    TansuMemory,
    TansuSqlite,
    RedisAlways,
    RedisEverysec,
    Rabbitmq,
}

/// One row of the comparison: a system with one durability setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum System {
    BasaltAlways,
    BasaltOs,
    TansuMemory,
    TansuSqlite,
    RedisAlways,
    RedisEverysec,
    Rabbitmq,
}

impl System {
    /// The rows `choices` name, in the order given, each once.
    pub(super) fn chosen(choices: &[Choice]) -> Vec<System> {
        let mut systems = Vec::new();
        for choice in choices {
            let named: &[System] = match choice {
                Choice::Basalt => &[System::BasaltAlways, System::BasaltOs],
                Choice::BasaltAlways => &[System::BasaltAlways],
                Choice::BasaltOs => &[System::BasaltOs],
                Choice::TansuMemory => &[System::TansuMemory],
                Choice::TansuSqlite => &[System::TansuSqlite],
                Choice::RedisAlways => &[System::RedisAlways],
                Choice::RedisEverysec => &[System::RedisEverysec],
                Choice::Rabbitmq => &[System::Rabbitmq],
            };
            for &system in named {
                if !systems.contains(&system) {
                    systems.push(system);
                }
            }
        }
        systems
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            System::BasaltAlways => "basalt-always",
            System::BasaltOs => "basalt-os",
            System::TansuMemory => "tansu-memory",
            System::TansuSqlite => "tansu-sqlite",
            System::RedisAlways => "redis-always",
            System::RedisEverysec => "redis-everysec",
            System::Rabbitmq => "rabbitmq",
        }
    }

    /// What an acknowledged message survives, in the system's own words.
    pub(super) fn durability(self) -> &'static str {
        match self {
            System::BasaltAlways => "log.flush.policy=always: fsync (group commit) before the ack",
            System::BasaltOs => "log.flush.policy=os: page cache, the kernel writes back",
            System::TansuMemory => "memory:// engine: nothing on disk",
            System::TansuSqlite => {
                "sqlite:// engine (libSQL, WAL, synchronous=normal): no fsync per commit"
            }
            System::RedisAlways => "AOF, appendfsync always: fsync before the reply",
            System::RedisEverysec => "AOF, appendfsync everysec: fsync once a second",
            System::Rabbitmq => {
                "durable queues, persistent messages: fsync before the publisher confirm"
            }
        }
    }

    /// Whether the system speaks the Kafka protocol (and is measured through librdkafka).
    pub(super) fn is_kafka(self) -> bool {
        matches!(
            self,
            System::BasaltAlways | System::BasaltOs | System::TansuMemory | System::TansuSqlite
        )
    }

    /// The protocol and client the workloads use.
    pub(super) fn client(self) -> &'static str {
        match self {
            System::BasaltAlways | System::BasaltOs | System::TansuMemory | System::TansuSqlite => {
                "Kafka, librdkafka: its defaults, acks as the workload says"
            }
            System::RedisAlways | System::RedisEverysec => {
                "RESP, redis-rs: XADD pipelined, XREADGROUP+XACK"
            }
            System::Rabbitmq => "AMQP 0-9-1, lapin: confirms, manual acks, prefetch 1000",
        }
    }

    /// The program that runs the system, if one can be found.
    pub(super) fn program(self) -> Option<PathBuf> {
        match self {
            System::BasaltAlways | System::BasaltOs => std::env::current_exe().ok(),
            System::TansuMemory | System::TansuSqlite => find_program("tansu").or_else(|| {
                let home = std::env::var_os("CARGO_HOME")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
                home.map(|h| h.join("bin/tansu")).filter(|p| p.is_file())
            }),
            System::RedisAlways | System::RedisEverysec => find_program("redis-server"),
            System::Rabbitmq => {
                // The script itself, not Debian's wrapper that switches to the rabbitmq user.
                let direct = PathBuf::from("/usr/lib/rabbitmq/bin/rabbitmq-server");
                if direct.is_file() {
                    Some(direct)
                } else {
                    find_program("rabbitmq-server")
                }
            }
        }
    }

    /// The command that installs the system, as words.
    pub(super) fn install_command(self) -> Option<Vec<&'static str>> {
        match self {
            System::BasaltAlways | System::BasaltOs => None,
            System::TansuMemory | System::TansuSqlite => Some(vec![
                "cargo",
                "install",
                "tansu",
                "--locked",
                "--features",
                "dynostore,libsql",
            ]),
            System::RedisAlways | System::RedisEverysec => {
                Some(vec!["apt-get", "install", "-y", "redis-server"])
            }
            System::Rabbitmq => Some(vec!["apt-get", "install", "-y", "rabbitmq-server"]),
        }
    }
}

/// A program on `PATH`.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Runs the system's install command (apt-get after `apt-get update` if it failed without),
/// its output going to stderr.
pub(super) fn install_system(system: System) -> Result<()> {
    let Some(words) = system.install_command() else {
        return Err("nothing installs it".into());
    };
    if words[0] == "apt-get" && run_to_stderr(&words).is_err() {
        run_to_stderr(&["apt-get", "update"])?;
    }
    run_to_stderr(&words)
}

/// Runs `words`, its stdout and stderr going to this process's stderr (stdout is the report's).
fn run_to_stderr(words: &[&str]) -> Result<()> {
    use std::os::fd::AsFd;
    tracing::info!(command = %words.join(" "), "running");
    let stderr = || -> Result<Stdio> { Ok(std::io::stderr().as_fd().try_clone_to_owned()?.into()) };
    let status = Command::new(words[0])
        .args(&words[1..])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(stderr()?)
        .stderr(stderr()?)
        .status()
        .map_err(|e| format!("run {}: {e}", words[0]))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` exited with {status}", words.join(" ")).into())
    }
}

/// Whether Erlang's port mapper daemon answers (RabbitMQ starts one if not, which outlives it).
fn epmd_running() -> bool {
    Command::new("epmd")
        .arg("-names")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A system running as a child process on a loopback port.
pub(super) struct Server {
    system: System,
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    /// RabbitMQ only: whether this run started the `epmd` it left behind, to stop it after.
    started_epmd: bool,
}

/// A port nobody listens on now.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Server {
    /// Starts `system` with its data in `dir` and waits until it serves.
    pub(super) fn start(system: System, program: &Path, dir: &Path) -> Result<Server> {
        let port = free_port()?;
        let data = dir.join("data");
        fs::create_dir_all(&data)?;
        let log = File::create(dir.join("server.log"))?;
        let mut command = Command::new(program);
        command
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let address = format!("127.0.0.1:{port}");
        match system {
            System::BasaltAlways | System::BasaltOs => {
                let policy = if system == System::BasaltOs {
                    "os"
                } else {
                    "always"
                };
                command
                    .arg("serve")
                    .args(["--listen", &address, "--data-dir"])
                    .arg(&data)
                    .args(["--log.flush.policy", policy])
                    .env("RUST_LOG", "warn");
            }
            System::TansuMemory | System::TansuSqlite => {
                // Tansu opens a `sqlite://` database relative to its working directory.
                let engine = if system == System::TansuMemory {
                    "memory://tansu/"
                } else {
                    "sqlite://tansu.db"
                };
                // Settings through the environment, which Tansu's versions read alike.
                command
                    .current_dir(&data)
                    .arg("broker")
                    .env("STORAGE_ENGINE", engine)
                    .env("LISTENER_URL", format!("tcp://{address}"))
                    .env("ADVERTISED_LISTENER_URL", format!("tcp://{address}"))
                    .env(
                        "PROMETHEUS_LISTENER_URL",
                        format!("tcp://127.0.0.1:{}", free_port()?),
                    )
                    .env("CLUSTER_ID", "basalt-bench")
                    .env("RUST_LOG", "warn");
            }
            System::RedisAlways | System::RedisEverysec => {
                let fsync = if system == System::RedisAlways {
                    "always"
                } else {
                    "everysec"
                };
                command
                    .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir"])
                    .arg(&data)
                    .args(["--appendonly", "yes", "--appendfsync", fsync])
                    .args(["--save", "", "--daemonize", "no", "--protected-mode", "no"]);
            }
            System::Rabbitmq => {
                let plugins = dir.join("enabled_plugins");
                fs::write(&plugins, "[].\n")?;
                let node = format!("basalt-bench-{}-{port}@localhost", std::process::id());
                command
                    .env("HOME", dir)
                    .env("RABBITMQ_NODENAME", node)
                    .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
                    .env("RABBITMQ_NODE_PORT", port.to_string())
                    .env("RABBITMQ_DIST_PORT", free_port()?.to_string())
                    .env("RABBITMQ_MNESIA_BASE", data.join("mnesia"))
                    .env("RABBITMQ_LOG_BASE", dir.join("log"))
                    .env("RABBITMQ_PID_FILE", dir.join("rabbitmq.pid"))
                    .env("RABBITMQ_ENABLED_PLUGINS_FILE", &plugins)
                    .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq"))
                    .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir.join("advanced.config"));
            }
        }
        let started_epmd = system == System::Rabbitmq && !epmd_running();
        let child = command
            .spawn()
            .map_err(|e| format!("start {}: {e}", program.display()))?;
        let mut server = Server {
            system,
            child: Some(child),
            port,
            dir: dir.to_path_buf(),
            started_epmd,
        };
        server.wait_until_serving()?;
        tracing::info!(system = system.name(), port, "serving");
        Ok(server)
    }

    /// The process id of the program started (for RabbitMQ, the script above the Erlang VM).
    pub(super) fn pid(&self) -> Result<u32> {
        Ok(self.child.as_ref().ok_or("not running")?.id())
    }

    /// The resident set of the server's process tree now, and how many processes that is.
    pub(super) fn rss_bytes(&self) -> Result<(u64, usize)> {
        process::tree_status_bytes(self.pid()?, "VmRSS:")
    }

    /// The kernel's peak resident set (`VmHWM`) over the life of the server's processes,
    /// summed over its process tree.
    pub(super) fn peak_rss_bytes(&self) -> Result<u64> {
        Ok(process::tree_status_bytes(self.pid()?, "VmHWM:")?.0)
    }

    /// Fails, with the end of its log, if the server exited.
    pub(super) fn check_running(&mut self) -> Result<()> {
        if let Some(child) = self.child.as_mut()
            && let Some(status) = child.try_wait()?
        {
            return Err(format!(
                "{} exited with {status}: {}",
                self.system.name(),
                self.log_tail()
            )
            .into());
        }
        Ok(())
    }

    pub(super) fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Polls until the port accepts connections (and, for Redis and RabbitMQ, the protocol
    /// answers); fails if the process exits first.
    fn wait_until_serving(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                return Err(format!(
                    "{} exited with {status} before serving: {}",
                    self.system.name(),
                    self.log_tail()
                )
                .into());
            }
            if TcpStream::connect_timeout(&self.address().parse()?, Duration::from_secs(1)).is_ok()
                && self.answers()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not serve on {} within {} s: {}",
                    self.system.name(),
                    self.address(),
                    START_TIMEOUT.as_secs(),
                    self.log_tail()
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Whether the system answers its own protocol (Kafka systems: an open port suffices, the
    /// benches wait for metadata themselves).
    fn answers(&self) -> bool {
        let Ok(runtime) = runtime() else {
            return false;
        };
        match self.system {
            System::RedisAlways | System::RedisEverysec => runtime.block_on(async {
                let Ok(mut conn) = redis_connection(&self.address()).await else {
                    return false;
                };
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            }),
            System::Rabbitmq => runtime.block_on(async {
                match amqp_connect(&self.address()).await {
                    Ok(conn) => {
                        let _ = conn.close(200, "ready".into()).await;
                        true
                    }
                    Err(_) => false,
                }
            }),
            _ => true,
        }
    }

    /// The last lines of the server's log, for an error message.
    pub(super) fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().rev().take(5).collect();
        let tail: Vec<&str> = lines.into_iter().rev().collect();
        if tail.is_empty() {
            "(nothing logged)".to_owned()
        } else {
            tail.join(" | ")
        }
    }

    /// SIGTERM, then a kill if it has not exited within [`STOP_TIMEOUT`].
    pub(super) fn stop(mut self) {
        self.stop_child();
    }

    fn stop_child(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        self.terminate(&mut child);
        // epmd refuses to stop while a node is still registered (RabbitMQ's or its
        // rabbitmqctl's, which may take a moment to go).
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.started_epmd && epmd_running() && Instant::now() < deadline {
            let _ = Command::new("epmd")
                .arg("-kill")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn terminate(&self, child: &mut Child) {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        tracing::warn!(
            system = self.system.name(),
            "did not stop after SIGTERM: killed"
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_child();
    }
}

/// A tokio runtime for the Redis and RabbitMQ clients.
pub(super) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systems_are_chosen_once_in_order_and_basalt_means_both_rows() {
        let chosen = System::chosen(&[Choice::RedisAlways, Choice::Basalt, Choice::BasaltOs]);
        assert_eq!(
            chosen,
            [System::RedisAlways, System::BasaltAlways, System::BasaltOs]
        );
    }

    #[test]
    fn a_system_that_exits_before_serving_is_reported_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("fake-redis");
        fs::write(
            &script,
            "#!/bin/sh\necho \"cannot open the AOF\" >&2\nexit 3\n",
        )
        .unwrap();
        let mut permissions = fs::metadata(&script).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        fs::set_permissions(&script, permissions).unwrap();
        let work = dir.path().join("redis");
        fs::create_dir(&work).unwrap();
        let err = Server::start(System::RedisAlways, &script, &work)
            .err()
            .expect("it never serves")
            .to_string();
        assert!(err.contains("exited with"), "{err}");
        assert!(err.contains("cannot open the AOF"), "{err}");
    }
}
