//! Running writers against a budget: one OS thread per writer, all released together, each
//! repeating its operation until its byte share or the time is used up.
//!
//! Every operation writes the same number of bytes (one chunk or one batch) and is timed on its
//! own, so a [`Sample`] holds throughput and a latency distribution. The elapsed time runs from
//! the first writer's start to the last writer's end: a writer that finishes early does not make
//! the others look faster.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use super::Result;

/// How much one case may do; it stops at whichever limit comes first.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// Bytes all writers together may write; `None` for time-bounded cases.
    pub(crate) total_bytes: Option<u64>,
    /// Longest time a writer keeps going.
    pub(crate) time: Duration,
}

/// What one case measured.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    /// Bytes written by all writers.
    pub(crate) bytes: u64,
    /// Operations completed by all writers.
    pub(crate) ops: u64,
    /// From the first writer's start to the last writer's end.
    pub(crate) elapsed: Duration,
    /// Duration of each operation in nanoseconds, sorted.
    latencies_ns: Vec<u64>,
}

impl Sample {
    /// Throughput in MB/s (10^6 bytes per second).
    pub(crate) fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds()
    }

    /// Operations per second.
    pub(crate) fn ops_per_s(&self) -> f64 {
        self.ops as f64 / self.seconds()
    }

    /// Elapsed seconds (never zero).
    pub(crate) fn seconds(&self) -> f64 {
        self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (0..=1) of the operation latencies, in microseconds (nearest rank).
    pub(crate) fn latency_us(&self, q: f64) -> f64 {
        quantile_us(&self.latencies_ns, q)
    }

    /// The `q` quantiles of the latencies of several samples taken together, in microseconds.
    pub(crate) fn pooled_latency_us(samples: &[Sample], qs: &[f64]) -> Vec<f64> {
        let mut pooled: Vec<u64> = samples
            .iter()
            .flat_map(|s| s.latencies_ns.iter().copied())
            .collect();
        pooled.sort_unstable();
        qs.iter().map(|&q| quantile_us(&pooled, q)).collect()
    }
}

/// Nearest-rank quantile of sorted nanoseconds, in microseconds; 0 when there are none.
fn quantile_us(sorted_ns: &[u64], q: f64) -> f64 {
    let n = sorted_ns.len();
    if n == 0 {
        return 0.0;
    }
    let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as usize).clamp(1, n);
    sorted_ns[rank - 1] as f64 / 1e3
}

/// What one writer did.
struct WriterRun {
    start: Instant,
    end: Instant,
    bytes: u64,
    latencies_ns: Vec<u64>,
}

/// Runs `writers` on their own threads, released together; each call of a writer writes `chunk`
/// bytes. Every writer completes at least one operation, so every figure of the sample is
/// positive. Fails with the first writer's error.
pub(crate) fn run<W>(writers: Vec<W>, chunk: usize, budget: Budget) -> Result<Sample>
where
    W: FnMut() -> Result<()> + Send,
{
    let count = writers.len().max(1);
    let share = budget
        .total_bytes
        .map(|total| total.div_ceil(count as u64).max(chunk as u64));
    let barrier = Barrier::new(count);
    let runs: Vec<Result<WriterRun>> = std::thread::scope(|scope| {
        let handles: Vec<_> = writers
            .into_iter()
            .enumerate()
            .map(|(i, writer)| {
                let barrier = &barrier;
                std::thread::Builder::new()
                    .name(format!("bench-writer-{i}"))
                    .spawn_scoped(scope, move || {
                        drive(writer, chunk, share, budget.time, barrier)
                    })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| match handle {
                Ok(handle) => handle
                    .join()
                    .unwrap_or_else(|_| Err("a bench writer panicked".into())),
                Err(err) => Err(format!("spawn a bench writer: {err}").into()),
            })
            .collect()
    });
    let mut runs = runs.into_iter().collect::<Result<Vec<_>>>()?;
    let start = runs.iter().map(|r| r.start).min();
    let end = runs.iter().map(|r| r.end).max();
    let (Some(start), Some(end)) = (start, end) else {
        return Err("a bench case needs at least one writer".into());
    };
    let mut latencies_ns: Vec<u64> = runs
        .iter_mut()
        .flat_map(|r| std::mem::take(&mut r.latencies_ns))
        .collect();
    latencies_ns.sort_unstable();
    Ok(Sample {
        bytes: runs.iter().map(|r| r.bytes).sum(),
        ops: latencies_ns.len() as u64,
        elapsed: end - start,
        latencies_ns,
    })
}

fn drive<W>(
    mut writer: W,
    chunk: usize,
    share: Option<u64>,
    time: Duration,
    barrier: &Barrier,
) -> Result<WriterRun>
where
    W: FnMut() -> Result<()>,
{
    let mut latencies_ns = Vec::with_capacity(share.map_or(4096, |s| {
        (s / chunk.max(1) as u64).min(1 << 20) as usize + 1
    }));
    let mut bytes = 0u64;
    barrier.wait();
    let start = Instant::now();
    let deadline = start + time;
    let mut now = start;
    loop {
        let began = now;
        writer()?;
        now = Instant::now();
        latencies_ns.push((now - began).as_nanos().try_into().unwrap_or(u64::MAX));
        bytes += chunk as u64;
        if now >= deadline || share.is_some_and(|share| bytes >= share) {
            break;
        }
    }
    Ok(WriterRun {
        start,
        end: now,
        bytes,
        latencies_ns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_at_the_byte_share_and_counts_every_writer() {
        let writers: Vec<_> = (0..4).map(|_| || Ok(())).collect();
        let budget = Budget {
            total_bytes: Some(4 * 10 * 100),
            time: Duration::from_secs(60),
        };
        let sample = run(writers, 100, budget).unwrap();
        assert_eq!(sample.bytes, 4000);
        assert_eq!(sample.ops, 40);
        assert!(sample.latency_us(0.99) >= sample.latency_us(0.5));
        let pooled = Sample::pooled_latency_us(&[sample.clone(), sample.clone()], &[0.5, 1.0]);
        assert_eq!(pooled, vec![sample.latency_us(0.5), sample.latency_us(1.0)]);
    }

    #[test]
    fn stops_at_the_deadline_after_at_least_one_operation() {
        let writers = vec![|| {
            std::thread::sleep(Duration::from_millis(20));
            Ok(())
        }];
        let budget = Budget {
            total_bytes: None,
            time: Duration::from_millis(1),
        };
        let sample = run(writers, 7, budget).unwrap();
        assert_eq!((sample.bytes, sample.ops), (7, 1));
        assert!(sample.mb_per_s() > 0.0);
    }

    #[test]
    fn a_failing_writer_fails_the_case() {
        let writers = vec![|| Err("disk on fire".into())];
        let budget = Budget {
            total_bytes: None,
            time: Duration::from_secs(1),
        };
        let err = run(writers, 1, budget).unwrap_err();
        assert_eq!(err.to_string(), "disk on fire");
    }
}
