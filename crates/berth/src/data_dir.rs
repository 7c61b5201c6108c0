//! The data directory as each command sees it. `berth serve` is the only command that
//! creates one, and it holds `<data-dir>/berth.lock` exclusively while it runs, so a second
//! server on the same directory is refused. The operator commands (`berth iam`, `berth gc`,
//! `berth lifecycle`, `berth policy`) work beside a running server, so they take no lock;
//! they open an existing registry only, so that a mistyped `--data-dir` is an error
//! rather than a new, empty registry whose keys no server knows.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rustix::fs::{flock, FlockOperation};

use berth_config::StorageConfig;

/// The metadata database, whose presence marks a directory as a registry.
pub const META_DB: &str = "meta.db";
/// The lock file `berth serve` holds for its lifetime.
pub const LOCK_FILE: &str = "berth.lock";

/// `path` made absolute against the current directory, so messages name the directory
/// actually used (a relative `--data-dir` depends on where the command ran).
pub fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}

/// Refuses a path that exists but is not a directory (a file given as `--data-dir`).
fn refuse_non_directory(dir: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => bail!(
            "data directory {} is not a directory; give a directory with --data-dir (or \
             BERTH_DATA_DIR, storage.data_dir)",
            dir.display()
        ),
        _ => Ok(()),
    }
}

/// For the operator commands: `storage.data_dir` must hold a registry that
/// `berth serve` created (`meta.db` and `master.key`; with `meta_in_data_dir` false, the
/// metadata is in PostgreSQL and only the key is looked for).
pub fn require_existing(storage: &StorageConfig, meta_in_data_dir: bool) -> anyhow::Result<()> {
    let dir = &storage.data_dir;
    refuse_non_directory(dir)?;
    let hint = "name the server's data directory with --data-dir DIR (or BERTH_DATA_DIR, \
                storage.data_dir); only `berth serve` creates a new one";
    if !dir.exists() {
        bail!("data directory {} does not exist; {hint}", dir.display());
    }
    for file in [META_DB, crate::master_key::MASTER_KEY] {
        // A key named by the configuration lives elsewhere.
        let elsewhere = if file == META_DB {
            !meta_in_data_dir
        } else {
            storage.master_key_configured()
        };
        if !elsewhere && !dir.join(file).is_file() {
            bail!(
                "{} holds no Berth registry (no {file}); {hint}",
                dir.display()
            );
        }
    }
    Ok(())
}

/// `berth serve`'s hold on its data directory: an exclusive `flock` on
/// `<data-dir>/berth.lock`, released when the process exits (however it exits).
#[derive(Debug)]
pub struct ServeLock {
    _file: File,
}

/// Creates the data directory if needed and locks it for this server; a directory that
/// another `berth serve` holds is refused, naming that server's pid.
pub fn create_and_lock(storage: &StorageConfig) -> anyhow::Result<ServeLock> {
    let dir = &storage.data_dir;
    refuse_non_directory(dir)?;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))?;
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    if let Err(e) = flock(&file, FlockOperation::NonBlockingLockExclusive) {
        if e != rustix::io::Errno::WOULDBLOCK {
            return Err(std::io::Error::from(e))
                .with_context(|| format!("locking {}", path.display()));
        }
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let who = match holder.trim().parse::<u32>() {
            Ok(pid) => format!("another berth serve (pid {pid})"),
            Err(_) => "another berth serve".to_string(),
        };
        bail!(
            "{who} is already using data directory {}; stop it, or give this server \
             another --data-dir",
            dir.display()
        );
    }
    // The pid is for the message above only; the lock itself is the flock.
    file.set_len(0)
        .and_then(|_| file.rewind())
        .and_then(|_| writeln!(file, "{}", std::process::id()))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(ServeLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(dir: &Path) -> StorageConfig {
        StorageConfig {
            data_dir: dir.to_path_buf(),
            fsync: false,
            ..StorageConfig::default()
        }
    }

    #[test]
    fn a_second_lock_is_refused_with_the_holders_pid_and_freed_on_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let s = storage(&tmp.path().join("data"));
        let held = create_and_lock(&s).unwrap();
        let err = create_and_lock(&s).unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(held);
        create_and_lock(&s).unwrap();
    }

    #[test]
    fn files_and_empty_directories_are_not_registries() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let s = storage(&file);
        let err = create_and_lock(&s).unwrap_err().to_string();
        assert!(err.contains("is not a directory"), "{err}");
        let err = require_existing(&s, true).unwrap_err().to_string();
        assert!(err.contains("is not a directory"), "{err}");
        let err = require_existing(&storage(tmp.path()), true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("holds no Berth registry (no meta.db)"),
            "{err}"
        );
        let err = require_existing(&storage(&tmp.path().join("missing")), true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
        assert!(err.contains("--data-dir"), "{err}");
    }
}
