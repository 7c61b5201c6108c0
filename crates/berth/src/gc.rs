//! `berth gc`: one garbage-collection pass over a data directory, by hand, with a
//! readable report. Safe beside a running `berth serve` (the collector serializes with
//! pushes on the metadata database's write lock; see docs/ARCHITECTURE.md).

use std::time::Duration;

use anyhow::Context;

use berth_config::Config;
use berth_registry::gc::{GarbageCollector, GcOptions, GcReport};

/// Runs one pass and prints its report (JSON with `json`).
pub fn run(cfg: Config, grace_secs: Option<u64>, dry_run: bool, json: bool) -> anyhow::Result<()> {
    let data_dir = cfg.storage.data_dir.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let options = GcOptions {
        grace: Duration::from_secs(grace_secs.unwrap_or(cfg.gc.grace_secs)),
        dry_run,
        duty: None,
        file_scan_every: None,
    };
    let report = rt.block_on(async {
        let stores = crate::stores::open(&cfg).await?;
        let blobs = crate::blob_backend::open_blob_store(&cfg.storage).await?;
        let gc = GarbageCollector::new(stores.meta, blobs);
        gc.run(options).await.context("garbage collection failed")
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report, &data_dir.display().to_string()));
    }
    Ok(())
}

/// `1536` → `1.5 KiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// The report as a small table and a summary line.
pub fn render(r: &GcReport, data_dir: &str) -> String {
    let (verb, summary) = if r.dry_run {
        ("would delete", "would reclaim")
    } else {
        ("deleted", "reclaimed")
    };
    let row = |label: &str, count: u64, bytes: Option<u64>| match bytes {
        Some(b) => format!(
            "  {label:<40} {count:>8}  {:>10}  ({b} bytes)\n",
            human_bytes(b)
        ),
        None => format!("  {label:<40} {count:>8}\n"),
    };
    let mut out = format!(
        "berth gc{} over {data_dir} (grace period {} s)\n\n  {:<40} {:>8}  {:>10}\n",
        if r.dry_run { " --dry-run" } else { "" },
        r.grace_secs,
        "",
        "blobs",
        "size"
    );
    out += &row(
        &format!("{verb}: unreferenced > grace"),
        r.blobs,
        Some(r.bytes),
    );
    out += &row(
        &format!("{verb}: files no row records"),
        r.unrecorded_files,
        Some(r.unrecorded_bytes),
    );
    out += &row(
        "kept: unreferenced, within grace",
        r.pending_blobs,
        Some(r.pending_bytes),
    );
    out += &row(&format!("{verb}: unused repository links"), r.links, None);
    out += &format!(
        "\n{summary} {} blobs, {} ({} bytes) in {} ms\n",
        r.freed_blobs(),
        human_bytes(r.freed_bytes()),
        r.freed_bytes(),
        r.elapsed_ms
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
    }

    #[test]
    fn the_report_names_what_would_go() {
        let r = GcReport {
            dry_run: true,
            grace_secs: 60,
            blobs: 2,
            bytes: 3072,
            pending_blobs: 1,
            pending_bytes: 10,
            links: 4,
            ..GcReport::default()
        };
        let text = render(&r, "/data");
        assert!(
            text.contains("berth gc --dry-run over /data (grace period 60 s)"),
            "{text}"
        );
        assert!(
            text.contains("would delete: unreferenced > grace"),
            "{text}"
        );
        assert!(text.contains("3.0 KiB  (3072 bytes)"), "{text}");
        assert!(
            text.contains("would reclaim 2 blobs, 3.0 KiB (3072 bytes)"),
            "{text}"
        );
        let done = render(
            &GcReport {
                dry_run: false,
                ..r
            },
            "/data",
        );
        assert!(done.contains("reclaimed 2 blobs"), "{done}");
    }
}
