//! Lifecycle policies end to end: the real binary with a one-second lifecycle scheduler and
//! the registry's test clock (`BERTH_TEST_CLOCK_FILE`), driven by boto3
//! (`tests/lifecycle_boto3.py`: controlled push times, preview with waiter and paginator,
//! nothing deleted before execution, exactly the previewed set expired, kept images pull
//! byte-identically, lastEvaluatedAt), then the `berth lifecycle` commands on the stopped
//! server's data directory (the event log, a preview table, an idempotent run).
//!
//! Needs python3 with boto3 (`pip install boto3`). When either is missing this test FAILS,
//! unless `BERTH_ALLOW_MISSING_BOTOCORE=1`.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::{run, TestRegistry, CMD_TIMEOUT};

fn berth(data: &std::path::Path, args: &[&str]) -> common::CmdOutput {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.arg("lifecycle")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("BERTH_CONFIG");
    let out = run(cmd, CMD_TIMEOUT);
    assert!(out.success(), "berth lifecycle {args:?}\n{}", out.report());
    out
}

#[test]
fn boto3_previews_then_the_scheduler_expires_exactly_the_previewed_images() {
    let clock = tempfile::tempdir().unwrap();
    let clock_file = clock.path().join("offset");
    std::fs::write(&clock_file, "0").unwrap();
    let mut reg = TestRegistry::start_with_env(&[
        ("BERTH_TEST_CLOCK_FILE", clock_file.to_str().unwrap()),
        ("BERTH_LIFECYCLE__INTERVAL_SECS", "1"),
    ]);
    let data = reg.data_dir().expect("a spawned registry");
    let Some(out) =
        common::run_python_script(&reg, "lifecycle_boto3.py", &[clock_file.to_str().unwrap()])
    else {
        return;
    };
    let report = out.json();
    eprintln!("{}", serde_json::to_string_pretty(&report["ok"]).unwrap());
    let repo = report["facts"]["repository"].as_str().unwrap().to_string();
    let expired: BTreeSet<String> = report["facts"]["expired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(expired.len(), 6);

    // Each expiry is in the server log.
    let log = reg.server_log();
    for d in &expired {
        assert!(
            log.lines()
                .any(|l| l.contains("lifecycle policy expired an image") && l.contains(d)),
            "no log line for {d}"
        );
    }
    // The rounds ran as the jobs runtime's `lifecycle` pass, counted per pass.
    let metrics = common::http()
        .get(format!("{}/metrics", reg.base_url()))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let passes = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                "berth_background_passes_total{pass=\"lifecycle\",outcome=\"succeeded\"} ",
            )
        })
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(passes >= 1.0, "no lifecycle pass counted:\n{metrics}");
    let (status, _) = reg.stop().expect("a running server");
    assert!(status.success());

    // The event log names exactly the expired images with their rules.
    let events = berth(&data, &["events", "--repository", &repo, "--json"]).json();
    let logged: BTreeSet<String> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "EXPIRE")
        .map(|e| e["imageDigest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(logged, expired);
    // And the cold image's move to the archive.
    let archived = report["facts"]["archived"][0].as_str().unwrap().to_string();
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), expired.len() + 1);
    for e in events {
        let digest = e["imageDigest"].as_str().unwrap();
        if digest == archived {
            assert_eq!(e["action"], "TRANSITION");
            assert_eq!(e["appliedRulePriority"], 4);
        } else {
            assert!(expired.contains(digest), "{e}");
            assert_eq!(e["action"], "EXPIRE");
            assert!(
                matches!(e["appliedRulePriority"].as_u64(), Some(2 | 3)),
                "{e}"
            );
        }
    }
    let table = berth(&data, &["events"]).stdout_str();
    assert!(table.contains(&repo) && table.contains("EXPIRE"), "{table}");

    // A preview table of another policy: keep one image of any kind.
    let policy_file = clock.path().join("policy.json");
    std::fs::write(
        &policy_file,
        r#"{"rules":[{"rulePriority":1,"description":"keep the newest","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
    )
    .unwrap();
    let table = berth(
        &data,
        &[
            "preview",
            "--repository",
            &repo,
            "--policy-file",
            policy_file.to_str().unwrap(),
        ],
    )
    .stdout_str();
    let kept = report["facts"]["kept"].as_array().unwrap().len();
    let row = table
        .lines()
        .find(|l| l.trim_start().starts_with("1 "))
        .unwrap_or_else(|| panic!("no row for rule 1:\n{table}"));
    // Every kept (active) image but the newest (the index goes too, so its child may).
    let would = kept - 1;
    assert!(
        row.contains("expire")
            && row.split_whitespace().nth(2) == Some(would.to_string().as_str())
            && row.contains("keep the newest"),
        "{table}"
    );
    // The preview changed nothing; running the stored policy again is a no-op (it was
    // deleted by the script, so the run says so).
    let json = berth(
        &data,
        &[
            "preview",
            "--repository",
            &repo,
            "--policy-file",
            policy_file.to_str().unwrap(),
            "--json",
        ],
    )
    .json();
    // The archived image is evaluated too (archive class: this standard-class rule leaves it).
    assert_eq!(json["imagesEvaluated"].as_u64(), Some(kept as u64 + 1));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.args(["lifecycle", "run", "--repository", &repo, "--data-dir"])
        .arg(&data);
    let out = run(cmd, CMD_TIMEOUT);
    assert!(!out.success());
    assert!(
        out.stderr_str().contains("has no lifecycle policy"),
        "{}",
        out.report()
    );
}

/// `berth lifecycle run` in its own process beside the live server: the server stops
/// serving the expired tag from its manifest cache within a few seconds (its cache
/// follower reads the run's outbox events), and keeps serving the kept one.
#[test]
fn a_run_beside_the_live_server_reaches_its_manifest_cache() {
    if !common::require_clients(&["aws"]) {
        return;
    }
    let reg = TestRegistry::start();
    let data = reg.data_dir().expect("a spawned registry");
    let repo = reg.repo("lc-live");
    common::push_small_image(&reg, &repo, "old");
    std::thread::sleep(std::time::Duration::from_millis(20));
    common::push_small_image(&reg, &repo, "new");
    let status = |tag: &str| {
        common::http()
            .get(reg.v2(&format!("{repo}/manifests/{tag}")))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    // Served twice: the second answer comes from the cache.
    assert_eq!((status("old"), status("old")), (200, 200));
    let policy = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#;
    common::run_ok(common::aws_cli(
        &reg,
        &data.join("admin.credentials"),
        &[
            "ecr",
            "put-lifecycle-policy",
            "--repository-name",
            &repo,
            "--lifecycle-policy-text",
            policy,
        ],
    ));
    let out = berth(&data, &["run", "--repository", &repo, "--json"]).json();
    assert_eq!(out["expired"].as_array().map(Vec::len), Some(1), "{out}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while status("old") != 404 {
        assert!(
            std::time::Instant::now() < deadline,
            "the live server still serves the expired tag 10 s after the run"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(status("new"), 200);
}
