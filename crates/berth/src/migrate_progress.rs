//! Progress of `berth migrate` on stderr: an indicatif bar on a terminal, plain lines at
//! most every two seconds otherwise (logs, CI, a test's pipe).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::gc::human_bytes;

const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// Progress of one phase, counted in items (blobs, rows) and, for blobs, bytes.
pub struct Progress {
    phase: &'static str,
    items: u64,
    total_items: u64,
    bytes: u64,
    total_bytes: Option<u64>,
    bar: Option<ProgressBar>,
    last_line: Instant,
}

impl Progress {
    /// A phase of `total_items`; with `total_bytes`, the bar measures bytes.
    pub fn start(phase: &'static str, total_items: u64, total_bytes: Option<u64>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let (len, template) = match total_bytes {
                Some(b) => (
                    b,
                    "{msg:>9} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                ),
                None => (total_items, "{msg:>9} [{bar:30}] {pos}/{len} rows"),
            };
            let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(phase);
            bar
        });
        if bar.is_none() {
            eprintln!(
                "{phase}: {total_items} to check{}",
                total_bytes.map_or(String::new(), |b| format!(" ({})", human_bytes(b)))
            );
        }
        Progress {
            phase,
            items: 0,
            total_items,
            bytes: 0,
            total_bytes,
            bar,
            last_line: Instant::now(),
        }
    }

    /// `bytes` more of the current item were processed.
    pub fn bytes(&mut self, bytes: u64) {
        self.bytes += bytes;
        if let Some(bar) = &self.bar {
            if self.total_bytes.is_some() {
                bar.inc(bytes);
            }
        }
    }

    /// `n` more items are done.
    pub fn items(&mut self, n: u64) {
        self.items += n;
        match &self.bar {
            Some(bar) if self.total_bytes.is_none() => bar.inc(n),
            Some(_) => {}
            None if self.last_line.elapsed() >= PLAIN_EVERY => {
                self.last_line = Instant::now();
                eprintln!("{}", self.line());
            }
            None => {}
        }
    }

    fn line(&self) -> String {
        match self.total_bytes {
            Some(total) => format!(
                "{}: {}/{} ({} of {})",
                self.phase,
                self.items,
                self.total_items,
                human_bytes(self.bytes),
                human_bytes(total)
            ),
            None => format!("{}: {}/{}", self.phase, self.items, self.total_items),
        }
    }

    pub fn finish(self) {
        match self.bar {
            Some(bar) => bar.finish_and_clear(),
            None => eprintln!("{} (done)", self.line()),
        }
    }
}
