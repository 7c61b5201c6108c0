//! The watchdog every long-running harness server runs under: a small shell that starts the
//! server and whose standard input is a pipe from the test process. When the pipe closes
//! (the harness value is dropped, the test process exits or is killed outright) it stops the
//! server (the given signal, then SIGKILL after a grace period) and removes the server's
//! directory; if the server stops by itself first, the tail of its log goes to stderr.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};

const SCRIPT: &str = r#"
dir=$1; log=$2; signal=$3; polls=$4; shift 4
"$@" </dev/null >>"$dir/$log" 2>&1 &
server=$!
exec 3<&0
cat <&3 >/dev/null &
reader=$!
# (Polled: `wait -n` skips a job that ended before it was called.)
while kill -0 "$server" 2>/dev/null && kill -0 "$reader" 2>/dev/null; do
  sleep 0.2
done
if kill -0 "$reader" 2>/dev/null; then
  # The server stopped by itself (a port taken meanwhile, a bad setting): say why.
  tail -n 20 "$dir/$log" >&2
fi
kill "-$signal" "$server" 2>/dev/null
kill "$reader" 2>/dev/null
for _ in $(seq "$polls"); do
  kill -0 "$server" 2>/dev/null || break
  sleep 0.2
done
kill -KILL "$server" 2>/dev/null
wait "$server"
rm -rf "$dir"
"#;

/// How the watchdog stops its server.
pub(crate) struct Stop {
    /// The signal name for `kill` (`TERM`, `INT`, ...).
    pub signal: &'static str,
    /// How long to wait for it before SIGKILL, in 0.2 s polls.
    pub polls: u32,
}

/// A server under its watchdog; dropping it stops the server and removes `dir`.
pub(crate) struct Watchdog {
    child: Child,
}

impl Watchdog {
    /// Starts `server` (its program and arguments) with its output appended to
    /// `dir/log`. `name` is the watchdog's process name (seen in `ps`).
    pub(crate) fn spawn(
        name: &str,
        dir: &Path,
        log: &str,
        stop: Stop,
        server: &Command,
    ) -> std::io::Result<Watchdog> {
        let child = Command::new("bash")
            .arg("-c")
            .arg(SCRIPT)
            .arg(name)
            .arg(dir)
            .arg(log)
            .arg(stop.signal)
            .arg(stop.polls.to_string())
            .arg(server.get_program())
            .args(server.get_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        Ok(Watchdog { child })
    }

    /// `Some(what the watchdog printed)` once the server has stopped by itself.
    pub(crate) fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(_)) => {
                let mut log = String::new();
                if let Some(mut err) = self.child.stderr.take() {
                    let _ = err.read_to_string(&mut log);
                }
                Some(log)
            }
            _ => None,
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Closing its standard input tells the watchdog to stop the server.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// Runs `child_test` of this test binary as a child process; it must print
/// `READY <pid> <dir> END` once its server is up (within `ready_timeout`). The child is then killed with SIGKILL,
/// and the server process and its directory must be gone within 30 s.
#[cfg(test)]
pub(crate) fn assert_a_killed_test_process_leaves_nothing(
    child_test: &str,
    what: &str,
    ready_timeout: std::time::Duration,
) {
    use std::time::{Duration, Instant};
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", child_test, "--nocapture", "--include-ignored"])
        .env("BERTH_TESTKIT_CHILD", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + ready_timeout;
    while !seen.contains("READY ") || !seen.contains(" END") {
        let n = out.read(&mut buf).unwrap();
        assert!(n > 0 && Instant::now() < deadline, "child said: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let line = seen
        .lines()
        .find_map(|l| l.strip_prefix("READY "))
        .unwrap()
        .strip_suffix(" END")
        .unwrap()
        .to_string();
    let (pid, dir) = line.split_once(' ').unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Path::new(&format!("/proc/{pid}")).exists() || Path::new(dir).exists() {
        assert!(
            Instant::now() < deadline,
            "{what} {pid} or {dir} outlived its test process"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
