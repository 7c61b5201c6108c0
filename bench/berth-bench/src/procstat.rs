//! Samples a server process (and the bench itself) from /proc during a scenario's measured phase:
//! CPU seconds (utime+stime delta) and peak resident memory (VmRSS polled every 100 ms).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

/// CPU seconds (user + system) consumed so far by `pid` ("self" for this process).
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`: state is field 3, utime 14 and stime 15 (1-based).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// [`cpu_seconds`] of an optional server process, for per-phase CPU deltas.
pub fn server_cpu_seconds(pid: Option<u32>) -> Option<f64> {
    pid.and_then(|p| cpu_seconds(&p.to_string()))
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// A `Vm*:` line of /proc/PID/status in KiB.
pub fn status_kib(pid: &str, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub struct Sampler {
    pid: Option<String>,
    server_cpu0: Option<f64>,
    self_cpu0: Option<f64>,
    peak_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Sampler {
    pub fn start(pid: Option<u32>) -> Self {
        let pid = pid.map(|p| p.to_string());
        let peak_kib = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let task = pid.clone().map(|p| {
            let (peak, stop) = (peak_kib.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(kib) = status_kib(&p, "VmRSS:") {
                        peak.fetch_max(kib, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        });
        Sampler {
            server_cpu0: pid.as_deref().and_then(cpu_seconds),
            self_cpu0: cpu_seconds("self"),
            pid,
            peak_kib,
            stop,
            task,
        }
    }

    pub async fn finish(mut self) -> Option<Value> {
        let mut out = serde_json::Map::new();
        if let (Some(p), Some(c0)) = (&self.pid, self.server_cpu0) {
            if let Some(kib) = status_kib(p, "VmRSS:") {
                self.peak_kib.fetch_max(kib, Ordering::Relaxed);
            }
            if let Some(c1) = cpu_seconds(p) {
                out.insert("server_cpu_s".into(), json!(c1 - c0));
            }
            out.insert(
                "server_peak_rss_mib".into(),
                json!(self.peak_kib.load(Ordering::Relaxed) as f64 / 1024.0),
            );
        }
        if let (Some(c0), Some(c1)) = (self.self_cpu0, cpu_seconds("self")) {
            out.insert("bench_cpu_s".into(), json!(c1 - c0));
        }
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        Some(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        assert!(cpu_seconds("self").is_some());
        assert!(status_kib("self", "VmRSS:").unwrap() > 0);
    }
}
