//! `basalt bench loopback`: the raw TCP bandwidth of the loopback interface, the ceiling of any
//! broker measured on 127.0.0.1 from this machine.
//!
//! A sender thread writes chunks (1 MiB by default) to a receiver thread over one connection to
//! 127.0.0.1 for a fixed time, then closes its side; the receiver counts the bytes it read, from
//! the accept to its last read.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use super::Result;
use super::output::mb_per_s;
use super::output::{emit, fmt_bytes, fmt_size, table};

/// Options of `basalt bench loopback`.
#[derive(Debug, Args)]
pub(crate) struct LoopbackArgs {
    /// Seconds the sender keeps writing.
    #[arg(long, default_value_t = 3.0, value_parser = parse_seconds)]
    seconds: f64,
    /// Bytes of each write.
    #[arg(long, default_value_t = 1 << 20, value_parser = clap::value_parser!(u64).range(1..=(256 << 20)))]
    chunk_size: u64,
    /// Print the report as one JSON document on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_seconds(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 3600.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a number of seconds between 0 and 3600"
        )),
    }
}

/// What `bench loopback` reports.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    chunk_bytes: u64,
    /// Bytes the receiver read.
    bytes: u64,
    /// From the receiver's accept to its last read.
    seconds: f64,
    /// 10^6 bytes per second.
    mb_per_s: f64,
    gbit_per_s: f64,
}

/// Runs the bench and prints its report.
pub(crate) fn run(args: &LoopbackArgs) -> Result<()> {
    let report = measure(
        Duration::from_secs_f64(args.seconds),
        args.chunk_size as usize,
    )?;
    emit(args.json, &report, render)
}

/// Sends `chunk`-byte writes over 127.0.0.1 for `time` and measures what arrived.
pub(crate) fn measure(time: Duration, chunk: usize) -> Result<Report> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (bytes, elapsed) = std::thread::scope(|scope| -> Result<(u64, Duration)> {
        let receiver = std::thread::Builder::new()
            .name("bench-loopback-receiver".into())
            .spawn_scoped(scope, move || receive(&listener, chunk))?;
        let sent = send(addr, time, chunk);
        let received = receiver
            .join()
            .unwrap_or_else(|_| Err("the receiver thread panicked".into()));
        sent?;
        received
    })?;
    let seconds = elapsed.as_secs_f64();
    let mb_per_s = mb_per_s(bytes, seconds);
    Ok(Report {
        chunk_bytes: chunk as u64,
        bytes,
        seconds,
        mb_per_s,
        gbit_per_s: mb_per_s * 8.0 / 1e3,
    })
}

impl Report {
    /// 10^6 bytes per second.
    #[cfg_attr(not(feature = "kafka-bench"), allow(dead_code))]
    pub(crate) fn mb_per_s(&self) -> f64 {
        self.mb_per_s
    }
}

fn send(addr: std::net::SocketAddr, time: Duration, chunk: usize) -> Result<()> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let data = vec![0x5Au8; chunk];
    let deadline = Instant::now() + time;
    while Instant::now() < deadline {
        stream.write_all(&data)?;
    }
    stream.shutdown(Shutdown::Write)?;
    Ok(())
}

/// Reads one connection to its end; returns the bytes and the time from the accept to the last
/// read.
fn receive(listener: &TcpListener, chunk: usize) -> Result<(u64, Duration)> {
    let (mut stream, _) = listener.accept()?;
    let mut buf = vec![0u8; chunk];
    let mut bytes = 0u64;
    let start = Instant::now();
    let mut last = start;
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        last = Instant::now();
        bytes += n as u64;
    }
    Ok((bytes, last - start))
}

fn render(report: &Report) -> String {
    let mut t = table(&["chunk", "bytes", "seconds", "MB/s", "Gbit/s"], 1);
    t.add_row(vec![
        fmt_size(report.chunk_bytes as usize),
        fmt_bytes(report.bytes),
        format!("{:.3}", report.seconds),
        format!("{:.0}", report.mb_per_s),
        format!("{:.1}", report.gbit_per_s),
    ]);
    format!("Loopback TCP bandwidth (one connection over 127.0.0.1)\n{t}\nMB = 10^6 bytes\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_run_moves_bytes() {
        let report = measure(Duration::from_millis(20), 64 << 10).unwrap();
        assert!(report.bytes >= 64 << 10);
        assert!(report.mb_per_s > 0.0);
    }
}
