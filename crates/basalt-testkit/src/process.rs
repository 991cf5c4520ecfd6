//! [`ProcessBroker`]: `basalt serve` as a child process with its log captured.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// How long the broker may take to start serving or to exit.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The line `basalt serve` logs once it accepts connections.
const SERVING: &str = "basalt is serving the Kafka protocol";

/// `basalt serve --listen 127.0.0.1:0 --data-dir DIR` running as a child process. Dropping it
/// kills the process if it still runs.
pub struct ProcessBroker {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl ProcessBroker {
    /// Starts `bin serve` on a free loopback port over `data_dir`, with `extra_args` appended,
    /// and waits until it serves.
    pub fn start(bin: &Path, data_dir: &Path, extra_args: &[&str]) -> ProcessBroker {
        Self::start_at(bin, data_dir, "127.0.0.1:0", extra_args, &[])
    }

    /// Starts `bin serve` listening on `listen` (a fixed address lets clients reconnect across
    /// restarts) over `data_dir`, with `extra_args` appended and `env` set, and waits until it
    /// serves.
    pub fn start_at(
        bin: &Path,
        data_dir: &Path,
        listen: &str,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> ProcessBroker {
        let mut child = Command::new(bin)
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(extra_args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                // Keeps draining stderr so the broker never blocks on a full pipe.
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if line.contains(SERVING)
                        && let Some(addr) = listen_address(&line)
                    {
                        let _ = addr_tx.send(addr);
                    }
                    if let Ok(mut log) = log.lock() {
                        log.push(line);
                    }
                }
            });
        }
        let addr = match addr_rx.recv_timeout(TIMEOUT) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the broker did not start serving within {TIMEOUT:?}; its log:\n{}",
                    joined(&log)
                );
            }
        };
        ProcessBroker { child, addr, log }
    }

    /// The address the broker listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `bootstrap.servers` for a client.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        joined(&self.log)
    }

    /// The operating system's id of the process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the process to exit; returns its status and log.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("cannot run kill");
        assert!(sent.success(), "kill -TERM failed");
        let status = self.wait_exit();
        (status, self.log())
    }

    /// Kills the process with SIGKILL (no chance to sync or clean up) and waits for it.
    pub fn kill(mut self) -> String {
        self.child.kill().expect("cannot kill the broker");
        let _ = self.wait_exit();
        self.log()
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!(
                        "the broker did not exit within {TIMEOUT:?}; its log:\n{}",
                        self.log()
                    );
                }
                Err(e) => panic!("cannot wait for the broker: {e}"),
            }
        }
    }
}

impl Drop for ProcessBroker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The `listen=HOST:PORT` field of the serving log line.
fn listen_address(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listen=")? + "listen=".len()..];
    let value = rest.split_whitespace().next()?;
    value.trim_matches('"').parse().ok()
}

fn joined(log: &Mutex<Vec<String>>) -> String {
    log.lock().map(|l| l.join("\n")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listen_address_is_read_from_the_log_line() {
        let line = "2026-01-01T00:00:00.000000Z  INFO basalt::serve: basalt is serving the Kafka \
                    protocol listen=127.0.0.1:40123 advertised=127.0.0.1:40123 data_dir=/tmp/x";
        assert_eq!(
            listen_address(line),
            Some("127.0.0.1:40123".parse().expect("valid address"))
        );
        assert_eq!(listen_address("no address here"), None);
    }
}
