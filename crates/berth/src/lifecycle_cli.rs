//! `berth lifecycle`: lifecycle policies by hand, on a data directory.
//!
//! - `preview --repository R [--policy-file F]`: evaluates the stored policy (or the file's)
//!   against the repository as it is now and prints, per rule, the action, the images and
//!   the bytes they hold. Changes nothing (not even the stored preview of the ECR API).
//! - `run --repository R`: executes the stored policy now, exactly as the scheduler does,
//!   and prints what it expired. The manifest cache of a `berth serve` running on the same
//!   data directory is per process: it may answer an expired tag from memory until that
//!   server restarts, so on a live registry prefer the scheduler (`[lifecycle]`).
//! - `events [--repository R] [--limit N]`: the log of expired images, newest first
//!   (safe beside a running server: it only reads).
//!
//! Every command prints a readable table, or JSON with `--json`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use berth_lifecycle::{Action, Evaluation, LifecyclePolicy};
use berth_meta::LifecycleStore;
use berth_registry::lifecycle::{ExecutionReport, Lifecycle};
use berth_types::{AccountId, RepositoryName};

use crate::gc::human_bytes;

#[derive(Args, Debug)]
pub struct LifecycleArgs {
    #[command(flatten)]
    pub registry: crate::cli::OperatorArgs,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// The account whose registry holds the repository [default: registry.account_id].
    #[arg(long, global = true)]
    pub account: Option<String>,
    #[command(subcommand)]
    pub command: LifecycleCommand,
}

#[derive(Subcommand, Debug)]
pub enum LifecycleCommand {
    /// Show what the repository's policy (or --policy-file's) would do now, per rule.
    Preview {
        #[arg(long)]
        repository: String,
        /// Evaluate this policy text instead of the stored one.
        #[arg(long)]
        policy_file: Option<PathBuf>,
        /// Also list every image the policy acts on.
        #[arg(long)]
        images: bool,
    },
    /// Execute the repository's stored policy now.
    Run {
        #[arg(long)]
        repository: String,
    },
    /// The log of images expired by lifecycle policies, newest first.
    Events {
        #[arg(long)]
        repository: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

pub fn run(args: LifecycleArgs) -> anyhow::Result<()> {
    let cfg = args.registry.load()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let out = rt.block_on(async {
        let blobs = crate::blob_backend::open_blob_store(&cfg.storage).await?;
        let stores = crate::stores::open(&cfg).await?;
        let (registry, _) = crate::serve::open_registry(&cfg.storage, &stores, blobs)?;
        let lifecycle = Lifecycle::new(registry, stores.lifecycle.clone());
        let account: AccountId = args
            .account
            .as_deref()
            .unwrap_or(&cfg.registry.account_id)
            .parse()
            .context("--account must be a 12-digit account id")?;
        let repository = |name: &str| -> anyhow::Result<RepositoryName> {
            RepositoryName::new(account, name)
                .map_err(|e| anyhow::anyhow!("invalid repository name {name:?}: {e}"))
        };
        match args.command {
            LifecycleCommand::Preview {
                repository: name,
                policy_file,
                images,
            } => {
                let repo = repository(&name)?;
                preview(&lifecycle, &repo, policy_file, images, args.json).await
            }
            LifecycleCommand::Run { repository: name } => {
                execute(&lifecycle, &repository(&name)?, args.json).await
            }
            LifecycleCommand::Events {
                repository: name,
                limit,
            } => {
                let repo = name.as_deref().map(repository).transpose()?;
                events(lifecycle.store().as_ref(), repo.as_ref(), limit, args.json).await
            }
        }
    })?;
    print!("{out}");
    Ok(())
}

fn when(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Expire => "expire",
        Action::Transition(_) => "transition",
    }
}

async fn preview(
    lifecycle: &Lifecycle,
    repo: &RepositoryName,
    policy_file: Option<PathBuf>,
    list_images: bool,
    json: bool,
) -> anyhow::Result<String> {
    let name = repo.as_str();
    let (text, source) = match policy_file {
        Some(f) => (
            std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?,
            f.display().to_string(),
        ),
        None => (
            lifecycle
                .store()
                .lifecycle_policy(repo)
                .await?
                .with_context(|| format!("repository {name} has no lifecycle policy"))?
                .text,
            "the stored policy".to_string(),
        ),
    };
    let policy = LifecyclePolicy::parse(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (eval, facts, now) = lifecycle.evaluate(repo, &policy).await?;
    if json {
        return Ok(format!(
            "{}\n",
            preview_json(&policy, &eval, facts.len(), now)
        ));
    }
    Ok(render_preview(
        name,
        &source,
        &policy,
        &eval,
        facts.len(),
        now,
        list_images,
    ))
}

fn preview_json(policy: &LifecyclePolicy, eval: &Evaluation, images: usize, now: i64) -> String {
    let rules: Vec<_> = eval
        .rules
        .iter()
        .zip(policy.rules())
        .map(|(r, rule)| {
            json!({
                "rulePriority": r.priority,
                "description": rule.description,
                "action": action_name(r.action),
                "images": r.expiring_images + r.transitioning_images,
                "bytes": r.expiring_bytes + r.transitioning_bytes,
            })
        })
        .collect();
    let acted: Vec<_> = eval
        .images
        .iter()
        .map(|o| {
            json!({
                "imageDigest": o.digest,
                "imageTags": o.tags,
                "appliedRulePriority": o.rule_priority,
                "action": action_name(o.action),
                "sizeInBytes": o.size_bytes,
            })
        })
        .collect();
    json!({
        "evaluatedAt": when(now),
        "imagesEvaluated": images,
        "rules": rules,
        "images": acted,
        "keptByIndex": eval.protected.len(),
    })
    .to_string()
}

/// The per-rule table: what each rule acts on and the bytes it frees or moves.
fn render_preview(
    name: &str,
    source: &str,
    policy: &LifecyclePolicy,
    eval: &Evaluation,
    images: usize,
    now: i64,
    list_images: bool,
) -> String {
    let mut out = format!(
        "Lifecycle preview of {name} ({source}) over {images} images at {}\n\n",
        when(now)
    );
    out += &format!(
        "  {:>4}  {:<10}  {:>7}  {:>10}  {}\n",
        "RULE", "ACTION", "IMAGES", "BYTES", "DESCRIPTION"
    );
    let (mut total_images, mut total_bytes) = (0usize, 0u64);
    for (r, rule) in eval.rules.iter().zip(policy.rules()) {
        let n = r.expiring_images + r.transitioning_images;
        let b = r.expiring_bytes + r.transitioning_bytes;
        total_images += n;
        total_bytes += b;
        out += &format!(
            "  {:>4}  {:<10}  {:>7}  {:>10}  {}\n",
            r.priority,
            action_name(r.action),
            n,
            human_bytes(b),
            rule.description.as_deref().unwrap_or("")
        );
    }
    out += &format!(
        "  {:>4}  {:<10}  {:>7}  {:>10}\n",
        "all",
        "",
        total_images,
        human_bytes(total_bytes)
    );
    if !eval.protected.is_empty() {
        out += &format!(
            "\n{} selected images stay because an index that stays references them.\n",
            eval.protected.len()
        );
    }
    if list_images && !eval.images.is_empty() {
        out += "\n";
        for o in &eval.images {
            out += &format!(
                "  {:>4}  {:<10}  {}  {}  {}\n",
                o.rule_priority,
                action_name(o.action),
                o.digest,
                human_bytes(o.size_bytes),
                if o.tags.is_empty() {
                    "<untagged>".to_string()
                } else {
                    o.tags.join(",")
                }
            );
        }
    }
    out
}

async fn execute(
    lifecycle: &Lifecycle,
    repo: &RepositoryName,
    json: bool,
) -> anyhow::Result<String> {
    let name = repo.as_str();
    let report = lifecycle.execute(repo).await?;
    if json {
        let rows = |v: &[berth_registry::lifecycle::Expired]| -> Vec<serde_json::Value> {
            v.iter()
                .map(|e| {
                    json!({
                        "imageDigest": e.digest.to_string(),
                        "imageTags": e.tags,
                        "appliedRulePriority": e.rule_priority,
                        "sizeInBytes": e.size,
                    })
                })
                .collect()
        };
        let expired = rows(&report.expired);
        let transitioned = rows(&report.transitioned);
        return Ok(format!(
            "{}\n",
            json!({
                "repository": name,
                "expired": expired,
                "transitioned": transitioned,
                "expiredBytes": report.expired_bytes,
                "skipped": report.skipped,
                "transitionsSkipped": report.transitions_skipped,
                "evaluatedAt": when(report.evaluated_at_ms),
            })
        ));
    }
    Ok(render_run(name, &report))
}

fn render_run(name: &str, report: &ExecutionReport) -> String {
    let mut per_rule: BTreeMap<u32, (usize, u64)> = BTreeMap::new();
    for e in &report.expired {
        let entry = per_rule.entry(e.rule_priority).or_default();
        entry.0 += 1;
        entry.1 += e.size;
    }
    let mut out = format!(
        "Lifecycle run of {name} at {}: expired {} images ({})\n",
        when(report.evaluated_at_ms),
        report.expired.len(),
        human_bytes(report.expired_bytes)
    );
    if !per_rule.is_empty() {
        out += &format!("\n  {:>4}  {:>7}  {:>10}\n", "RULE", "IMAGES", "BYTES");
        for (rule, (n, b)) in &per_rule {
            out += &format!("  {:>4}  {:>7}  {:>10}\n", rule, n, human_bytes(*b));
        }
    }
    if report.skipped > 0 {
        out += &format!(
            "\n{} images changed meanwhile (new tag or index) or were gone, and were left alone.\n",
            report.skipped
        );
    }
    if !report.transitioned.is_empty() {
        let bytes: u64 = report.transitioned.iter().map(|e| e.size).sum();
        out += &format!(
            "\nArchived {} images ({}).\n",
            report.transitioned.len(),
            human_bytes(bytes)
        );
    }
    if report.transitions_skipped > 0 {
        out += &format!(
            "\n{} transitions to the archive were not carried out (this registry has no archive tier).\n",
            report.transitions_skipped
        );
    }
    out +=
        "\nBlobs no other image uses are reclaimed by garbage collection after its grace period.\n";
    out
}

async fn events(
    store: &dyn LifecycleStore,
    repository: Option<&RepositoryName>,
    limit: usize,
    json: bool,
) -> anyhow::Result<String> {
    let events = store.recent_lifecycle_events(repository, limit).await?;
    if json {
        let v: Vec<_> = events
            .iter()
            .map(|e| {
                json!({
                    "id": e.id,
                    "at": when(e.at_ms),
                    "repository": e.repository.as_str(),
                    "imageDigest": e.digest,
                    "imageTags": e.tags,
                    "appliedRulePriority": e.rule_priority,
                    "action": e.action,
                    "sizeInBytes": e.size,
                    "imagePushedAt": when(e.pushed_ms),
                })
            })
            .collect();
        return Ok(format!("{}\n", serde_json::Value::from(v)));
    }
    let mut out = format!(
        "  {:<25}  {:<30}  {:>4}  {:<8}  {:>10}  {:<20}  {}\n",
        "WHEN", "REPOSITORY", "RULE", "ACTION", "SIZE", "DIGEST", "TAGS"
    );
    for e in &events {
        out += &format!(
            "  {:<25}  {:<30}  {:>4}  {:<8}  {:>10}  {:<20}  {}\n",
            when(e.at_ms),
            e.repository,
            e.rule_priority,
            e.action,
            human_bytes(e.size),
            e.digest.get(..19).unwrap_or(&e.digest),
            if e.tags.is_empty() {
                "<untagged>".to_string()
            } else {
                e.tags.join(",")
            }
        );
    }
    if events.is_empty() {
        out += "  (no image has been expired by a lifecycle policy)\n";
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_lifecycle::ImageFacts;

    #[test]
    fn the_preview_table_has_a_row_per_rule_with_images_and_bytes() {
        let policy = LifecyclePolicy::parse(
            r#"{"rules":[
              {"rulePriority":1,"description":"old untagged","selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
              {"rulePriority":2,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":100},"action":{"type":"expire"}}]}"#,
        )
        .unwrap();
        let t0 = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let images: Vec<ImageFacts> = (0..3)
            .map(|i| {
                ImageFacts::new(
                    format!("sha256:{i:064}"),
                    t0 + time::Duration::seconds(i),
                    1024 * (i as u64 + 1),
                )
            })
            .collect();
        let eval = berth_lifecycle::evaluate(&policy, &images, t0);
        let text = render_preview("team/app", "the stored policy", &policy, &eval, 3, 0, true);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("Lifecycle preview of team/app (the stored policy) over 3 images")
        );
        // The two oldest go by rule 1: 1 KiB + 2 KiB.
        let rule1 = lines
            .iter()
            .find(|l| l.trim_start().starts_with("1 "))
            .unwrap();
        assert!(
            rule1.contains("expire")
                && rule1.contains(" 2 ")
                && rule1.contains("3.0 KiB")
                && rule1.contains("old untagged"),
            "{rule1}"
        );
        let rule2 = lines
            .iter()
            .find(|l| l.trim_start().starts_with("2 "))
            .unwrap();
        assert!(rule2.contains(" 0 ") && rule2.contains("0 B"), "{rule2}");
        let all = lines
            .iter()
            .find(|l| l.trim_start().starts_with("all"))
            .unwrap();
        assert!(all.contains(" 2 ") && all.contains("3.0 KiB"), "{all}");
        assert!(text.contains(&format!("sha256:{:064}", 0)) && text.contains("<untagged>"));
    }
}
