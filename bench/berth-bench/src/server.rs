//! Servers the bench starts itself, for the scenarios that must stop, restart or reconfigure
//! them (`lifecycle-preview`, `gc-scale`, `gc-online`): `berth serve` on a data directory with
//! extra environment, or `docker-registry serve` with a generated config, each on a free
//! loopback port with its log in a file. Also runs one-off commands (`berth gc`,
//! `docker-registry garbage-collect`) as measured child processes: wall time, CPU and peak RSS
//! from `wait4`'s resource usage.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::auth::AccessKey;
use crate::client::Registry;

/// Where a scenario that starts its own servers finds the binary and keeps its files.
#[derive(clap::Args)]
pub struct OwnServerArgs {
    /// The server's binary (`berth`, or `docker-registry` for the reference where the
    /// scenario runs both).
    #[arg(long)]
    pub bin: PathBuf,
    /// A directory for the server's data, config, log and clock files (created; the data
    /// is deleted at the end unless --keep-data).
    #[arg(long)]
    pub work_dir: PathBuf,
    /// Keep the data directory.
    #[arg(long)]
    pub keep_data: bool,
}

/// A server process the bench owns: stopped on `stop` or when dropped.
pub struct Server {
    child: Option<Child>,
    pub url: String,
    pub pid: u32,
    pub log: PathBuf,
}

/// A port free right now on loopback (the OS picks it; a race with another process binding
/// it before the server does is possible but unlikely on a bench machine).
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn log_file(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening log {}", path.display()))
}

/// A random administrator key for a Berth the bench starts (set at its first start through
/// `BERTH_AUTH__BOOTSTRAP_*`); loopback only, so `rand`'s generator is enough.
pub fn random_key() -> AccessKey {
    use rand::Rng;
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    const ALL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let mut pick = |set: &[u8], n: usize| -> String {
        (0..n)
            .map(|_| set[rng.gen_range(0..set.len())] as char)
            .collect()
    };
    AccessKey {
        id: format!("AKIA{}", pick(UPPER, 16)),
        secret: pick(ALL, 40),
    }
}

impl Server {
    /// `berth serve` on `data_dir` with `env` added to the bench's environment (which the
    /// child inherits) and the bootstrap administrator key `key`.
    pub async fn start_berth(
        bin: &Path,
        data_dir: &Path,
        key: &AccessKey,
        env: &[(String, String)],
        log: &Path,
    ) -> Result<Server> {
        std::fs::create_dir_all(data_dir)?;
        let port = free_port()?;
        let out = log_file(log)?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data_dir)
            .env("BERTH_AUTH__BOOTSTRAP_ACCESS_KEY_ID", &key.id)
            .env("BERTH_AUTH__BOOTSTRAP_SECRET_ACCESS_KEY", &key.secret)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        Self::spawn(cmd, port, log).await
    }

    /// `docker-registry serve` over filesystem storage in `dir/data` (deletes enabled, the
    /// in-memory blob descriptor cache and no access log, as run.sh configures it); the
    /// config is `dir/config.yml`, for `garbage-collect` too.
    pub async fn start_reference(bin: &Path, dir: &Path, log: &Path) -> Result<Server> {
        std::fs::create_dir_all(dir.join("data"))?;
        let port = free_port()?;
        std::fs::write(
            dir.join("config.yml"),
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
                 storage:\n  cache:\n    blobdescriptor: inmemory\n  filesystem:\n    rootdirectory: {}\n\
                 \x20 delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.join("data").display()
            ),
        )?;
        let out = log_file(log)?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        Self::spawn(cmd, port, log).await
    }

    async fn spawn(mut cmd: Command, port: u16, log: &Path) -> Result<Server> {
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {:?}", cmd.get_program()))?;
        let mut s = Server {
            pid: child.id(),
            child: Some(child),
            url: format!("http://127.0.0.1:{port}"),
            log: log.to_path_buf(),
        };
        let probe = Registry::new(&s.url, Duration::from_secs(1))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = s.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                s.child = None;
                bail!(
                    "server exited during start ({st}); log: {}",
                    s.log.display()
                );
            }
            if probe.ping().await.is_ok() {
                return Ok(s);
            }
            if Instant::now() > deadline {
                s.stop().await;
                bail!(
                    "server did not answer GET /v2/ within 30 s; log: {}",
                    log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, up to 30 s for a graceful exit, then SIGKILL.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Bytes of the log so far (to find what the server logged during a window).
    pub fn log_len(&self) -> u64 {
        std::fs::metadata(&self.log).map_or(0, |m| m.len())
    }

    /// The log's lines from byte `from` to `to`.
    pub fn log_lines(&self, from: u64, to: u64) -> Vec<String> {
        let Ok(data) = std::fs::read(&self.log) else {
            return Vec::new();
        };
        let (from, to) = (from as usize, (to as usize).min(data.len()));
        if from >= to {
            return Vec::new();
        }
        String::from_utf8_lossy(&data[from..to])
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One finished child process: its wall time, CPU (user + system) and peak RSS, and the
/// stdout lines the caller kept.
pub struct ChildRun {
    pub wall: Duration,
    pub cpu_s: f64,
    pub peak_rss_mib: f64,
    pub success: bool,
    pub status: String,
    pub kept: Vec<String>,
    pub stderr_tail: String,
}

/// Runs `cmd` to completion on a blocking thread; `keep` chooses the stdout lines to return
/// (the output may be huge: distribution's garbage-collect prints a line per blob).
pub async fn run_measured(
    mut cmd: Command,
    keep: impl Fn(&str) -> bool + Send + 'static,
) -> Result<ChildRun> {
    tokio::task::spawn_blocking(move || {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let what = format!("{:?}", cmd.get_program());
        let start = Instant::now();
        let mut child = cmd.spawn().with_context(|| format!("starting {what}"))?;
        let (out, err) = (
            child.stdout.take().expect("piped"),
            child.stderr.take().expect("piped"),
        );
        let reader = std::thread::spawn(move || {
            let mut kept = Vec::new();
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if keep(&line) {
                    kept.push(line);
                }
            }
            kept
        });
        let err_reader = std::thread::spawn(move || {
            let mut tail = std::collections::VecDeque::new();
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tail.len() == 20 {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            Vec::from(tail).join("\n")
        });
        let pid = child.id() as libc::pid_t;
        let mut status: libc::c_int = 0;
        // SAFETY: a zeroed rusage is a valid out-parameter for wait4.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: waits for our own unreaped child; both pointers are valid for the call.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        let wall = start.elapsed();
        // The child is reaped: std must not wait for it again.
        std::mem::forget(child);
        if rc != pid {
            return Err(anyhow!(
                "wait4 on {what}: {}",
                std::io::Error::last_os_error()
            ));
        }
        let kept = reader.join().map_err(|_| anyhow!("stdout reader"))?;
        let stderr_tail = err_reader.join().map_err(|_| anyhow!("stderr reader"))?;
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let exited = libc::WIFEXITED(status);
        let code = libc::WEXITSTATUS(status);
        Ok(ChildRun {
            wall,
            cpu_s: tv(ru.ru_utime) + tv(ru.ru_stime),
            // ru_maxrss is in KiB on Linux.
            peak_rss_mib: ru.ru_maxrss as f64 / 1024.0,
            success: exited && code == 0,
            status: if exited {
                format!("exit status {code}")
            } else {
                format!("killed by signal {}", libc::WTERMSIG(status))
            },
            kept,
            stderr_tail,
        })
    })
    .await
    .context("measured child panicked")?
}

/// Files under `dir` (recursively) and their total size; `(0, 0)` if it does not exist.
pub fn count_files(dir: &Path) -> (u64, u64) {
    let (mut n, mut bytes) = (0u64, 0u64);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => {
                    n += 1;
                    bytes += e.metadata().map_or(0, |m| m.len());
                }
                _ => {}
            }
        }
    }
    (n, bytes)
}
