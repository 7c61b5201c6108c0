//! `berth migrate --from <config> --to <config>`: copies a whole installation between any
//! two backends (SQLite + disk ↔ PostgreSQL + S3, or any other pair): blobs first
//! (streamed, every digest verified, resumable: `migrate_blobs.rs`), then the metadata
//! in one transaction on the target (`berth_meta::transfer`), secrets re-sealed when the
//! target's master key is another, then the archive tier's files. The source must be
//! stopped; a source data directory is locked as `berth serve` locks it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use tokio::sync::mpsc;

use berth_config::{Config, MetaBackend, StorageBackend};
use berth_meta::secrets::MasterKey;
use berth_meta::transfer::{
    Fingerprint, Message, MetaTransfer, Reseal, Table, TransferError, Value, TABLES,
};
use berth_types::Digest;

use crate::master_key::{self, Missing};
use crate::migrate_blobs::BlobReport;
use crate::migrate_progress::Progress;
use crate::stores::MetaStores;

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The configuration of the installation to copy (TOML; see docs/CONFIG.md). Stop
    /// every server using it first.
    #[arg(long, value_name = "CONFIG")]
    pub from: PathBuf,
    /// The configuration of the installation to copy into. Its metadata database must be
    /// empty, or hold what an earlier run of the same migration copied.
    #[arg(long, value_name = "CONFIG")]
    pub to: PathBuf,
    /// Replace the target's metadata even though it holds other data (its blobs are
    /// kept; garbage collection reclaims those nothing references).
    #[arg(long)]
    pub force: bool,
    /// Print the final report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// One side of the migration: its configuration and open stores.
struct Side {
    cfg: Config,
    label: &'static str,
    stores: MetaStores,
    blobs: Arc<dyn berth_blobstore::BlobStore>,
}

pub fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let from = load(&args.from, "--from")?;
    let to = load(&args.to, "--to")?;
    let mut log = from.log.clone();
    log.level = "warn".into();
    crate::logging::init(&log)?;
    refuse_same_place(&from, &to)?;
    if from.meta.backend == MetaBackend::Sqlite {
        crate::data_dir::require_existing(&from.storage, true).context(
            "the source (--from) is not an existing registry: name its data directory in storage.data_dir",
        )?;
    }
    // Locked like `berth serve` locks them: a server still running on the source, or one
    // started on the target meanwhile, is refused.
    let _source_lock = if from.storage.data_dir.exists() {
        Some(
            crate::data_dir::create_and_lock(&from.storage)
                .context("the source must be stopped before it is migrated")?,
        )
    } else {
        None
    };
    let _target_lock = crate::data_dir::create_and_lock(&to.storage)
        .context("the target's data directory is in use")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = rt.block_on(migrate(from, to, args.force))?;
    report.print(args.json, started.elapsed().as_secs_f64());
    Ok(())
}

fn load(path: &Path, flag: &str) -> anyhow::Result<Config> {
    let mut cfg = Config::load(Some(path)).with_context(|| {
        format!(
            "loading the configuration given by {flag} ({})",
            path.display()
        )
    })?;
    cfg.validate()
        .with_context(|| format!("the configuration given by {flag} ({})", path.display()))?;
    cfg.storage.data_dir = crate::data_dir::absolute(&cfg.storage.data_dir)?;
    Ok(cfg)
}

/// Copying an installation onto itself would find its own rows and refuse anyway, but
/// with a confusing message; say what is wrong.
fn refuse_same_place(a: &Config, b: &Config) -> anyhow::Result<()> {
    let meta = |c: &Config| match c.meta.backend {
        MetaBackend::Sqlite => format!("sqlite:{}", c.storage.data_dir.display()),
        MetaBackend::Postgres => format!(
            "postgres:{}",
            c.meta.url.as_ref().map(|u| u.expose()).unwrap_or_default()
        ),
    };
    let storage = |c: &Config| match c.storage.backend {
        StorageBackend::Disk => format!("disk:{}", c.storage.data_dir.display()),
        StorageBackend::S3 => format!(
            "s3:{}:{}:{}",
            c.storage.s3.endpoint.as_deref().unwrap_or(""),
            c.storage.s3.bucket,
            c.storage.s3.prefix
        ),
    };
    if meta(a) == meta(b) {
        bail!("--from and --to name the same metadata database; the target must be another one");
    }
    if storage(a) == storage(b) {
        bail!("--from and --to name the same blob storage; the target must be another one");
    }
    if a.storage.data_dir == b.storage.data_dir {
        bail!("--from and --to name the same data directory; give the target its own storage.data_dir");
    }
    Ok(())
}

async fn open_side(cfg: Config, label: &'static str) -> anyhow::Result<Side> {
    let stores = crate::stores::open(&cfg)
        .await
        .with_context(|| format!("opening the {label}'s metadata database"))?;
    let blobs = crate::blob_backend::open_blob_store(&cfg.storage)
        .await
        .with_context(|| format!("opening the {label}'s blob storage"))?;
    Ok(Side {
        cfg,
        label,
        stores,
        blobs,
    })
}

/// What a run did, for the final report.
struct Report {
    repositories: u64,
    images: u64,
    tags: u64,
    rows: u64,
    metadata: &'static str,
    resealed: bool,
    blobs: BlobReport,
    archive_files: u64,
}

async fn migrate(from: Config, to: Config, force: bool) -> anyhow::Result<Report> {
    let src = open_side(from, "source").await?;
    let dst = open_side(to, "target").await?;
    let (sv, dv) = (
        src.stores.transfer.schema_version().await?,
        dst.stores.transfer.schema_version().await?,
    );
    if sv != dv {
        bail!(
            "the source's metadata schema is version {sv}, the target's {dv}: run the newer \
             berth binary's migrations on both (start and stop `berth serve` with each \
             configuration), then migrate with that binary"
        );
    }
    let (src_key, dst_key) = keys(&src, &dst).await?;
    let resealed = src_key.id_hex() != dst_key.id_hex();

    // Decide about the target's metadata before copying anything.
    let all: Vec<&'static Table> = TABLES.iter().collect();
    let target_rows: u64 = dst.stores.transfer.row_counts(&all).await?.iter().sum();
    let mut replace = false;
    let mut metadata_done = false;
    if target_rows > 0 {
        let (s, d) = tokio::try_join!(
            fingerprint(src.stores.transfer.as_ref(), &src_key),
            fingerprint(dst.stores.transfer.as_ref(), &dst_key)
        )?;
        if s == d {
            metadata_done = true;
        } else if force {
            replace = true;
        } else {
            bail!(
                "the target's metadata database already holds {target_rows} rows that are not \
                 this source's (another registry, or changed since an earlier migration); \
                 migrate into an empty database, or pass --force to replace its metadata"
            );
        }
    }

    let (blob_list, archive_only) = blob_list(src.stores.transfer.as_ref()).await?;
    let blobs =
        crate::migrate_blobs::copy_all(&src.blobs, &dst.blobs, &blob_list, &archive_only).await?;

    let rows = if metadata_done {
        0
    } else {
        copy_metadata(&src, &dst, &src_key, &dst_key, replace).await?
    };
    let archive_files = copy_archive(&src.cfg, &dst.cfg)?;

    let counted: Vec<&'static Table> = ["repositories", "manifests", "tags"]
        .iter()
        .filter_map(|t| berth_meta::transfer::table(t))
        .collect();
    let counts = dst.stores.transfer.row_counts(&counted).await?;
    Ok(Report {
        repositories: counts.first().copied().unwrap_or(0),
        images: counts.get(1).copied().unwrap_or(0),
        tags: counts.get(2).copied().unwrap_or(0),
        rows,
        metadata: if metadata_done {
            "already copied by an earlier run (identical)"
        } else if replace {
            "replaced (--force)"
        } else {
            "copied"
        },
        resealed,
        blobs,
        archive_files,
    })
}

/// The source's master key (checked against its secrets) and the target's (configured,
/// or its data directory's, created if missing).
async fn keys(src: &Side, dst: &Side) -> anyhow::Result<(MasterKey, MasterKey)> {
    let src_key = master_key::load(&src.cfg.storage, Missing::Refuse)
        .context("loading the source's master key")?;
    let check = master_key::load(&src.cfg.storage, Missing::Refuse)?;
    master_key::check_matches_database(
        src.stores.iam(check).as_ref(),
        &src_key.id_hex(),
        &master_key::source(&src.cfg.storage),
    )
    .await
    .with_context(|| format!("checking the {}'s master key", src.label))?;
    let dst_key = if dst.cfg.storage.master_key_configured() {
        master_key::load(&dst.cfg.storage, Missing::Refuse)
    } else {
        // A single node without a key yet takes the source's: nothing to re-seal, and
        // login tokens issued by the source stay valid.
        let path = dst.cfg.storage.data_dir.join(master_key::MASTER_KEY);
        let bytes = master_key::bytes(&src.cfg.storage)?;
        MasterKey::load_or_install(&path, bytes)
            .with_context(|| format!("installing the master key {}", path.display()))
    }
    .with_context(|| format!("loading the {}'s master key", dst.label))?;
    Ok((src_key, dst_key))
}

/// Every blob the source records (digest, size), and those whose only copy is archived.
async fn blob_list(
    src: &dyn MetaTransfer,
) -> anyhow::Result<(Vec<(Digest, u64)>, HashSet<Digest>)> {
    let tables: Vec<&'static Table> = ["blobs", "archived_blobs"]
        .iter()
        .filter_map(|t| berth_meta::transfer::table(t))
        .collect();
    let (tx, mut rx) = mpsc::channel(4);
    let export = src.export(tables, tx);
    let collect = async {
        let mut blobs = Vec::new();
        let mut archived = HashSet::new();
        while let Some(Message::Rows(t, rows)) = rx.recv().await {
            for row in rows {
                let digest = match row.first() {
                    Some(Value::Text(d)) => d
                        .parse::<Digest>()
                        .with_context(|| format!("a {} row holds the digest {d:?}", t.name))?,
                    _ => bail!("a {} row without a digest", t.name),
                };
                let size = match row.get(1) {
                    Some(Value::Int(n)) => (*n).max(0) as u64,
                    _ => 0,
                };
                match t.name {
                    "blobs" => blobs.push((digest, size)),
                    _ if row.get(4) == Some(&Value::Bool(false)) => {
                        archived.insert(digest);
                    }
                    _ => {}
                }
            }
        }
        Ok((blobs, archived))
    };
    let (exported, collected) = tokio::join!(export, collect);
    exported.context("reading the source's blob list")?;
    collected
}

async fn fingerprint(db: &dyn MetaTransfer, key: &MasterKey) -> anyhow::Result<(u64, [u8; 32])> {
    let (tx, mut rx) = mpsc::channel(4);
    let export = db.export(TABLES.iter().collect(), tx);
    let collect = async {
        let mut f = Fingerprint::default();
        while let Some(Message::Rows(t, rows)) = rx.recv().await {
            f.add(t, &rows, key);
        }
        f.finish()
    };
    let (exported, f) = tokio::join!(export, collect);
    exported.context("reading metadata to compare source and target")?;
    Ok(f)
}

/// Streams every table from the source into one transaction on the target, re-sealing
/// secrets on the way when the keys differ.
async fn copy_metadata(
    src: &Side,
    dst: &Side,
    src_key: &MasterKey,
    dst_key: &MasterKey,
    replace: bool,
) -> anyhow::Result<u64> {
    let all: Vec<&'static Table> = TABLES.iter().collect();
    let total: u64 = src.stores.transfer.row_counts(&all).await?.iter().sum();
    let mut progress = Progress::start("metadata", total, None);
    let (tx, mut rx) = mpsc::channel::<Message>(4);
    let (itx, irx) = mpsc::channel::<Message>(4);
    let export = src.stores.transfer.export(all, tx);
    let reseal = Reseal {
        from: src_key,
        to: dst_key,
    };
    let relay = async {
        while let Some(message) = rx.recv().await {
            let message = match message {
                Message::Rows(t, mut rows) => {
                    reseal.apply(t, &mut rows)?;
                    progress.items(rows.len() as u64);
                    Message::Rows(t, rows)
                }
                Message::Done => Message::Done,
            };
            if itx.send(message).await.is_err() {
                break;
            }
        }
        // Dropping the sender without `Done` (an export error) makes the import roll back.
        drop(itx);
        Ok::<(), TransferError>(())
    };
    let (exported, relayed, imported) =
        tokio::join!(export, relay, dst.stores.transfer.import(irx, replace));
    exported.context("reading the source's metadata")?;
    relayed.context("re-sealing secrets for the target's master key")?;
    let rows = imported.context("writing the target's metadata (nothing was committed)")?;
    progress.finish();
    Ok(rows)
}

/// The archive tier lives in each data directory (`<data-dir>/archive`): its files are
/// copied as they are (each is checked against its digest when restored).
fn copy_archive(from: &Config, to: &Config) -> anyhow::Result<u64> {
    let src = from.storage.data_dir.join("archive");
    let dst = to.storage.data_dir.join("archive");
    if !src.is_dir() {
        return Ok(0);
    }
    copy_tree(&src, &dst).with_context(|| {
        format!(
            "copying the archive tier from {} to {}",
            src.display(),
            dst.display()
        )
    })
}

fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<u64> {
    std::fs::create_dir_all(dst)?;
    let mut copied = 0;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        if entry.file_type()?.is_dir() {
            copied += copy_tree(&from, &to)?;
        } else if std::fs::metadata(&to).map(|m| m.len()).ok() != Some(entry.metadata()?.len()) {
            let tmp = to.with_extension("migrate-tmp");
            std::fs::copy(&from, &tmp)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &to)?;
            copied += 1;
        }
    }
    Ok(copied)
}

impl Report {
    fn print(&self, json: bool, secs: f64) {
        let b = &self.blobs;
        if json {
            let v = serde_json::json!({
                "repositories": self.repositories,
                "images": self.images,
                "tags": self.tags,
                "metadataRows": self.rows,
                "metadata": self.metadata,
                "secretsResealed": self.resealed,
                "blobs": b.blobs,
                "blobsCopied": b.copied,
                "blobsAlreadyPresent": b.already_present,
                "blobsReplacedCorrupt": b.replaced_corrupt,
                "blobsArchiveOnly": b.archive_only,
                "bytes": b.bytes,
                "bytesCopied": b.bytes_copied,
                "archiveFilesCopied": self.archive_files,
                "seconds": secs,
            });
            println!("{v:#}");
            return;
        }
        let h = crate::gc::human_bytes;
        println!("migration complete in {secs:.1} s");
        println!(
            "  repositories {}, images {}, tags {}",
            self.repositories, self.images, self.tags
        );
        println!(
            "  blobs {} ({}): {} copied ({}), {} already in the target and verified, {} replaced (did not verify), {} archive-only",
            b.blobs,
            h(b.bytes),
            b.copied,
            h(b.bytes_copied),
            b.already_present,
            b.replaced_corrupt,
            b.archive_only
        );
        println!("  metadata: {} ({} rows)", self.metadata, self.rows);
        if self.resealed {
            println!(
                "  secret access keys re-sealed under the target's master key; login tokens \
                 issued before the migration are not accepted by the target (log in again)"
            );
        }
        if self.archive_files > 0 {
            println!("  archive files copied: {}", self.archive_files);
        }
    }
}
