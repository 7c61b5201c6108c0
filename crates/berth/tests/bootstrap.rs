//! First start of the real binary on an empty data directory: the default account and its
//! administrator key (`admin.credentials`, mode 0600, an AWS shared-credentials file),
//! kept across restarts; and the offline `berth iam` commands, run while the server runs.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{run, run_ok, TestRegistry, CMD_TIMEOUT};
use serde_json::Value;

/// Parses an INI file into section → key → value, failing on anything malformed.
fn parse_ini(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut section = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.to_string());
            out.entry(name.to_string()).or_default();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not a key = value line: {line:?}"));
        let s = section.clone().expect("a key before any section");
        out.get_mut(&s)
            .unwrap()
            .insert(k.trim().to_string(), v.trim().to_string());
    }
    out
}

/// (access key id, secret) from the admin credentials file, checking its shape and mode.
fn admin_credentials(data: &Path) -> (String, String) {
    let path = data.join("admin.credentials");
    let mode = std::fs::metadata(&path)
        .unwrap_or_else(|e| panic!("{} missing: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "admin.credentials mode is {mode:o}");
    let ini = parse_ini(&std::fs::read_to_string(&path).unwrap());
    assert_eq!(ini.len(), 1, "{ini:?}");
    let default = &ini["default"];
    let keys: Vec<&str> = default.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["aws_access_key_id", "aws_secret_access_key", "region"]
    );
    let id = default["aws_access_key_id"].clone();
    let secret = default["aws_secret_access_key"].clone();
    assert!(id.starts_with("AKIA") && id.len() == 20, "{id}");
    assert_eq!(secret.len(), 40);
    assert_eq!(default["region"], "us-east-1");
    (id, secret)
}

fn berth_iam(data: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
    c.arg("iam").args(args).arg("--data-dir").arg(data);
    c.env_remove("BERTH_CONFIG");
    c
}

fn json_of(cmd: Command) -> Value {
    run_ok(cmd).json()
}

/// The access key ids of the account root, read from meta.db directly.
fn root_keys(data: &Path) -> Vec<String> {
    let c = rusqlite::Connection::open(data.join("meta.db")).unwrap();
    let mut st = c
        .prepare(
            "SELECT access_key_id FROM access_keys WHERE user_ref IS NULL ORDER BY access_key_id",
        )
        .unwrap();
    let rows = st.query_map([], |r| r.get(0)).unwrap();
    rows.collect::<Result<Vec<String>, _>>().unwrap()
}

#[test]
fn first_start_creates_admin_credentials_once_and_iam_commands_work() {
    let mut reg = TestRegistry::start();
    let Some(data) = reg.data_dir() else {
        eprintln!("skipped: needs a spawned berth (BERTH_E2E_REGISTRY is set)");
        return;
    };

    // First start: the file exists, parses, and the secret was printed exactly once.
    let (id, secret) = admin_credentials(&data);
    assert_eq!(reg.server_log().matches(&secret).count(), 1);
    assert!(reg.server_log().contains(&id));
    let mode = std::fs::metadata(data.join("master.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(std::fs::read(data.join("master.key")).unwrap().len(), 32);
    assert_eq!(root_keys(&data), vec![id.clone()]);
    // The secret is not stored in plaintext.
    let db = std::fs::read(data.join("meta.db")).unwrap();
    assert!(!db.windows(secret.len()).any(|w| w == secret.as_bytes()));

    // A restart keeps the same key and prints nothing new.
    reg.restart();
    assert_eq!(admin_credentials(&data), (id.clone(), secret.clone()));
    assert_eq!(reg.server_log().matches(&secret).count(), 1);
    assert_eq!(root_keys(&data), vec![id.clone()]);
    let v2 = common::http().get(reg.v2("")).send().unwrap();
    assert_eq!(v2.status(), 200, "/v2/ behaviour is unchanged");

    // `berth iam` while the server runs.
    let user = json_of(berth_iam(&data, &["create-user", "ci-bot"]));
    assert_eq!(user["User"]["UserName"], "ci-bot");
    assert_eq!(user["User"]["Arn"], "arn:aws:iam::000000000000:user/ci-bot");
    assert!(user["User"]["UserId"].as_str().unwrap().starts_with("AIDA"));
    let dup = run(berth_iam(&data, &["create-user", "ci-bot"]), CMD_TIMEOUT);
    assert!(!dup.success());
    assert!(
        dup.stderr_str().contains("already exists"),
        "{}",
        dup.report()
    );

    let key = json_of(berth_iam(&data, &["create-access-key", "ci-bot"]));
    assert_eq!(key["AccessKey"]["UserName"], "ci-bot");
    assert_eq!(key["AccessKey"]["Status"], "Active");
    assert!(key["AccessKey"]["AccessKeyId"]
        .as_str()
        .unwrap()
        .starts_with("AKIA"));
    assert_eq!(
        key["AccessKey"]["SecretAccessKey"].as_str().unwrap().len(),
        40
    );
    let missing = run(
        berth_iam(&data, &["create-access-key", "nobody"]),
        CMD_TIMEOUT,
    );
    assert!(!missing.success());
    assert!(
        missing.stderr_str().contains("cannot be found"),
        "{}",
        missing.report()
    );

    json_of(berth_iam(
        &data,
        &["create-user", "deployer", "--path", "/deploy/"],
    ));
    let users = json_of(berth_iam(&data, &["list-users"]));
    let names: Vec<&str> = users["Users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["UserName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ci-bot", "deployer"]);
    let filtered = json_of(berth_iam(
        &data,
        &["list-users", "--path-prefix", "/deploy/"],
    ));
    assert_eq!(filtered["Users"].as_array().unwrap().len(), 1);

    // Rotation: a new root key in admin.credentials, the old one gone.
    let rotated = json_of(berth_iam(&data, &["rotate-admin-key"]));
    let (new_id, new_secret) = admin_credentials(&data);
    assert_ne!(new_id, id);
    assert_ne!(new_secret, secret);
    assert_eq!(rotated["AccessKey"]["AccessKeyId"], new_id.as_str());
    assert_eq!(rotated["DeletedAccessKeyIds"], serde_json::json!([id]));
    assert!(rotated.get("SecretAccessKey").is_none());
    assert_eq!(root_keys(&data), vec![new_id.clone()]);
    let leftovers: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // Key listing and deletion; a full root blocks rotation with advice.
    let ci_key = key["AccessKey"]["AccessKeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let listed = json_of(berth_iam(&data, &["list-access-keys", "ci-bot"]));
    assert_eq!(
        listed["AccessKeyMetadata"][0]["AccessKeyId"],
        ci_key.as_str()
    );
    let roots = json_of(berth_iam(&data, &["list-access-keys"]));
    assert_eq!(roots["AccessKeyMetadata"].as_array().unwrap().len(), 1);
    assert_eq!(
        roots["AccessKeyMetadata"][0]["AccessKeyId"],
        new_id.as_str()
    );
    let wrong_owner = run(
        berth_iam(&data, &["delete-access-key", &ci_key]),
        CMD_TIMEOUT,
    );
    assert!(!wrong_owner.success(), "{}", wrong_owner.report());
    json_of(berth_iam(
        &data,
        &["delete-access-key", &ci_key, "--user", "ci-bot"],
    ));
    let none = json_of(berth_iam(&data, &["list-access-keys", "ci-bot"]));
    assert_eq!(none["AccessKeyMetadata"], serde_json::json!([]));

    // Another restart keeps the rotated key.
    reg.restart();
    assert_eq!(admin_credentials(&data), (new_id.clone(), new_secret));
    assert_eq!(root_keys(&data), vec![new_id]);
}

/// `berth <args>` with no configuration from the test's environment.
fn berth(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
    c.args(args);
    for var in ["BERTH_CONFIG", "BERTH_DATA_DIR", "BERTH_LISTEN"] {
        c.env_remove(var);
    }
    c
}

/// Runs and expects failure; the stderr.
fn fails(cmd: Command) -> String {
    let out = run(cmd, CMD_TIMEOUT);
    assert!(!out.success(), "expected a failure\n{}", out.report());
    out.stderr_str()
}

#[test]
fn operator_commands_refuse_a_data_dir_without_a_registry() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let file = work.join("a-file");
    std::fs::write(&file, "not a registry").unwrap();
    std::fs::create_dir(work.join("empty")).unwrap();
    let abs_missing = work.join("typo");
    let commands: [&[&str]; 5] = [
        &["iam", "list-users"],
        &["iam", "rotate-admin-key"],
        &["gc", "--dry-run"],
        &["lifecycle", "events"],
        &["policy", "get-registry-policy"],
    ];
    for args in commands {
        // A relative path is resolved (and named) against the current directory, and
        // nothing is created there.
        let mut c = berth(args);
        c.args(["--data-dir", "typo"]).current_dir(work);
        let err = fails(c);
        assert!(
            err.contains(&format!(
                "data directory {} does not exist",
                abs_missing.display()
            )),
            "{args:?}: {err}"
        );
        assert!(err.contains("--data-dir"), "{args:?}: {err}");
        assert!(
            !abs_missing.exists(),
            "{args:?} created {}",
            abs_missing.display()
        );

        let mut c = berth(args);
        c.arg("--data-dir").arg(work.join("empty"));
        let err = fails(c);
        assert!(
            err.contains("holds no Berth registry (no meta.db)"),
            "{args:?}: {err}"
        );
        assert_eq!(std::fs::read_dir(work.join("empty")).unwrap().count(), 0);

        let mut c = berth(args);
        c.arg("--data-dir").arg(&file);
        let err = fails(c);
        assert!(
            err.contains(&format!("{} is not a directory", file.display())),
            "{args:?}: {err}"
        );
    }
    let mut c = berth(&["serve", "--listen", "127.0.0.1:0", "--data-dir"]);
    c.arg(&file);
    let err = fails(c);
    assert!(err.contains("is not a directory"), "{err}");
    assert!(!err.contains("File exists"), "{err}");
}

#[test]
fn iam_commands_honour_the_configured_account_of_an_existing_registry() {
    let reg = TestRegistry::start_with_env(&[
        ("BERTH_REGISTRY__ACCOUNT_ID", "123456789012"),
        ("BERTH_REGISTRY__REGION", "eu-west-1"),
    ]);
    let data = reg.data_dir().expect("a spawned registry");
    let ini = parse_ini(&std::fs::read_to_string(data.join("admin.credentials")).unwrap());
    assert_eq!(ini["default"]["region"], "eu-west-1");
    let mut c = berth_iam(&data, &["create-user", "u1"]);
    c.env("BERTH_REGISTRY__ACCOUNT_ID", "123456789012");
    assert_eq!(
        run_ok(c).json()["User"]["Arn"],
        "arn:aws:iam::123456789012:user/u1"
    );
    // An account that does not exist is refused, and not created.
    let bad = run(
        berth_iam(&data, &["list-users", "--account", "999999999999"]),
        CMD_TIMEOUT,
    );
    assert!(!bad.success());
    assert!(
        bad.stderr_str().contains("does not exist"),
        "{}",
        bad.report()
    );
    let mut c = berth_iam(&data, &["list-accounts"]);
    c.env("BERTH_REGISTRY__ACCOUNT_ID", "123456789012");
    let accounts = run_ok(c).json();
    assert_eq!(
        accounts["Accounts"].as_array().unwrap().len(),
        1,
        "{accounts}"
    );
}

#[test]
fn one_server_per_data_dir_and_nothing_on_disk_before_the_port_is_bound() {
    let reg = TestRegistry::start();
    let Some(data) = reg.data_dir() else {
        eprintln!("skipped: needs a spawned berth (BERTH_E2E_REGISTRY is set)");
        return;
    };
    // A second server on the same directory is refused, naming the first one's pid.
    let holder = std::fs::read_to_string(data.join("berth.lock")).unwrap();
    let mut c = berth(&["serve", "--listen", "127.0.0.1:0", "--data-dir"]);
    c.arg(&data);
    let err = fails(c);
    assert!(
        err.contains(&format!(
            "another berth serve (pid {}) is already using data directory {}",
            holder.trim(),
            data.display()
        )),
        "{err}"
    );
    // The operator commands documented to work beside it still do.
    run_ok(berth_iam(&data, &["list-users"]));
    let mut gc = berth(&["gc", "--dry-run", "--json", "--data-dir"]);
    gc.arg(&data);
    run_ok(gc);
    let mut policy = berth(&["policy", "get-registry-policy", "--data-dir"]);
    policy.arg(&data);
    let err = fails(policy);
    assert!(err.contains("has no registry policy"), "{err}");
    assert_eq!(common::http().get(reg.v2("")).send().unwrap().status(), 200);

    // A port in use is reported before a new data directory (and key) is created.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh");
    let mut c = berth(&["serve", "--listen", &port, "--data-dir"]);
    c.arg(&fresh);
    let err = fails(c);
    assert!(err.contains(&format!("binding {port}")), "{err}");
    assert!(
        !fresh.exists(),
        "a data directory was created before binding"
    );
}

#[test]
fn config_errors_name_the_file_key_or_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("berth.toml");
    std::fs::write(&file, "[server]\nlistne = \"127.0.0.1:5000\"\n").unwrap();
    let mut c = berth(&["config", "check", "--config"]);
    c.arg(&file);
    let err = fails(c);
    assert!(
        err.contains(&format!(
            "server.listne in {}: unknown field",
            file.display()
        )),
        "{err}"
    );
    assert!(!err.contains("default.server"), "{err}");

    let mut c = berth(&["config", "check"]);
    c.env("BERTH_SERVER__LISTEN", "localhost");
    let err = fails(c);
    assert!(err.contains("BERTH_SERVER__LISTEN: "), "{err}");
    assert!(!err.contains("SERVER.LISTEN"), "{err}");
}
