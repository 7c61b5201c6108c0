//! The IAM and STS Query APIs of the real binary, driven by the real AWS CLI
//! (`aws iam ...`, `aws sts get-caller-identity`) with `--endpoint-url` and the
//! administrator credentials file written at first start; then a user's own key, in a
//! credentials file of its own, to show that what the CLI manages governs that user's
//! requests (IAM and ECR alike).
//!
//! Needs the AWS CLI (`pip install awscli`). When it is missing this test FAILS, unless
//! `BERTH_ALLOW_MISSING_AWSCLI=1`.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use common::{find_program, run, unique_suffix, CmdOutput, TestRegistry, CMD_TIMEOUT};

/// Runs `aws` against one registry as the holder of one credentials file.
struct Aws {
    endpoint: String,
    credentials: PathBuf,
    region: String,
}

impl Aws {
    fn run(&self, args: &[&str]) -> CmdOutput {
        let mut cmd = Command::new("aws");
        cmd.args(args)
            .arg("--endpoint-url")
            .arg(&self.endpoint)
            .arg("--output")
            .arg("json")
            .env("AWS_SHARED_CREDENTIALS_FILE", &self.credentials)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_DEFAULT_REGION", &self.region)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env("AWS_PAGER", "");
        for var in [
            "AWS_PROFILE",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT_URL",
        ] {
            cmd.env_remove(var);
        }
        run(cmd, CMD_TIMEOUT)
    }

    /// Runs and expects success; the JSON printed (`null` for commands that print nothing).
    fn ok(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(out.success(), "aws failed\n{}", out.report());
        if out.stdout_str().trim().is_empty() {
            Value::Null
        } else {
            out.json()
        }
    }

    /// Runs and expects the service error `code` (the CLI prints `An error occurred (code)`).
    fn err(&self, args: &[&str], code: &str) -> String {
        let out = self.run(args);
        let stderr = out.stderr_str();
        assert!(
            !out.success() && stderr.contains(&format!("An error occurred ({code})")),
            "expected {code}\n{}",
            out.report()
        );
        stderr
    }
}

/// The `region` of a shared credentials file.
fn region_of(credentials: &Path) -> String {
    let text = std::fs::read_to_string(credentials).expect("read the credentials file");
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == "region")
        .map(|(_, v)| v.trim().to_string())
        .expect("region in the credentials file")
}

fn write_credentials(path: &Path, key: &Value) {
    let body = format!(
        "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        key["AccessKeyId"].as_str().unwrap(),
        key["SecretAccessKey"].as_str().unwrap()
    );
    std::fs::write(path, body).unwrap();
}

/// True when the test may run; fails the test when the CLI is missing unless allowed.
fn have_awscli() -> bool {
    if find_program("aws").is_some() {
        return true;
    }
    assert!(
        std::env::var("BERTH_ALLOW_MISSING_AWSCLI").as_deref() == Ok("1"),
        "the aws CLI is missing: this test needs it (pip install awscli); \
         set BERTH_ALLOW_MISSING_AWSCLI=1 to skip it"
    );
    eprintln!("SKIPPED IAM CLI test (no aws CLI); BERTH_ALLOW_MISSING_AWSCLI=1");
    false
}

fn names(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|v| v[field].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn aws_cli_manages_iam_and_its_policies_govern_requests() {
    if !have_awscli() {
        return;
    }
    let reg = TestRegistry::start();
    let Some(data) = reg.data_dir() else {
        eprintln!(
            "skipped: needs a spawned berth for its admin.credentials (BERTH_E2E_REGISTRY is set)"
        );
        return;
    };
    let admin_credentials = data.join("admin.credentials");
    let region = region_of(&admin_credentials);
    let admin = Aws {
        endpoint: reg.base_url(),
        credentials: admin_credentials,
        region: region.clone(),
    };
    let scratch = tempfile::tempdir().unwrap();
    let user_credentials = scratch.path().join("user.credentials");
    let user = Aws {
        endpoint: reg.base_url(),
        credentials: user_credentials.clone(),
        region,
    };
    let sfx = unique_suffix();
    let name = format!("ci-{sfx}");
    let other = format!("other-{sfx}");
    let group = format!("devs-{sfx}");

    // The administrator is the account root.
    let me = admin.ok(&["sts", "get-caller-identity"]);
    let account = me["Account"].as_str().unwrap().to_string();
    assert_eq!(account.len(), 12, "{me}");
    assert_eq!(me["Arn"], format!("arn:aws:iam::{account}:root"));
    assert_eq!(me["UserId"], account.as_str());
    let root = admin.ok(&["iam", "get-user"]);
    assert_eq!(root["User"]["Arn"], format!("arn:aws:iam::{account}:root"));
    assert_eq!(root["User"]["UserId"], account.as_str());

    // Users.
    let created = admin.ok(&["iam", "create-user", "--user-name", &name, "--path", "/ci/"]);
    let user_arn = format!("arn:aws:iam::{account}:user/ci/{name}");
    assert_eq!(created["User"]["Arn"], user_arn.as_str());
    assert_eq!(created["User"]["Path"], "/ci/");
    assert!(created["User"]["UserId"]
        .as_str()
        .unwrap()
        .starts_with("AIDA"));
    assert!(created["User"]["CreateDate"].is_string());
    admin.err(
        &["iam", "create-user", "--user-name", &name],
        "EntityAlreadyExists",
    );
    admin.err(
        &["iam", "get-user", "--user-name", &format!("nobody-{sfx}")],
        "NoSuchEntity",
    );
    admin.err(
        &["iam", "create-user", "--user-name", "has/slash"],
        "ValidationError",
    );
    admin.ok(&["iam", "create-user", "--user-name", &other]);
    assert_eq!(
        admin.ok(&["iam", "get-user", "--user-name", &name])["User"],
        created["User"]
    );
    // Two users, one per page: the CLI follows IsTruncated/Marker.
    let listed = admin.ok(&["iam", "list-users", "--page-size", "1"]);
    let all = names(&listed["Users"], "UserName");
    assert!(all.contains(&name) && all.contains(&other), "{listed}");
    let listed = admin.ok(&["iam", "list-users", "--path-prefix", "/ci/"]);
    assert_eq!(names(&listed["Users"], "UserName"), vec![name.clone()]);

    // Groups.
    let g = admin.ok(&["iam", "create-group", "--group-name", &group]);
    assert_eq!(
        g["Group"]["Arn"],
        format!("arn:aws:iam::{account}:group/{group}")
    );
    admin.err(
        &["iam", "create-group", "--group-name", &group],
        "EntityAlreadyExists",
    );
    let got = admin.ok(&["iam", "get-group", "--group-name", &group]);
    assert_eq!(got["Users"], json!([]));
    admin.ok(&[
        "iam",
        "add-user-to-group",
        "--group-name",
        &group,
        "--user-name",
        &name,
    ]);
    let got = admin.ok(&["iam", "get-group", "--group-name", &group]);
    assert_eq!(names(&got["Users"], "UserName"), vec![name.clone()]);
    let groups = admin.ok(&["iam", "list-groups-for-user", "--user-name", &name]);
    assert_eq!(names(&groups["Groups"], "GroupName"), vec![group.clone()]);
    admin.err(
        &[
            "iam",
            "add-user-to-group",
            "--group-name",
            &format!("nogroup-{sfx}"),
            "--user-name",
            &name,
        ],
        "NoSuchEntity",
    );

    // The user's key, in its own credentials file.
    let key = admin.ok(&["iam", "create-access-key", "--user-name", &name])["AccessKey"].clone();
    assert_eq!(key["UserName"], name.as_str());
    assert_eq!(key["Status"], "Active");
    assert_eq!(key["SecretAccessKey"].as_str().unwrap().len(), 40);
    let key_id = key["AccessKeyId"].as_str().unwrap().to_string();
    write_credentials(&user_credentials, &key);
    assert!(
        !reg.server_log()
            .contains(key["SecretAccessKey"].as_str().unwrap()),
        "the secret reached the server log"
    );
    let me = user.ok(&["sts", "get-caller-identity"]);
    assert_eq!(me["Arn"], user_arn.as_str());
    assert_eq!(me["Account"], account.as_str());
    assert_eq!(me["UserId"], created["User"]["UserId"]);

    // Without policies the user may do nothing, on IAM or ECR.
    let denied = user.err(&["iam", "list-users"], "AccessDenied");
    assert!(denied.contains("iam:ListUsers"), "{denied}");
    user.err(&["iam", "get-user"], "AccessDenied");
    user.err(&["ecr", "describe-repositories"], "AccessDeniedException");

    // Inline user policies: bad documents are refused, a good one takes effect at once.
    let malformed = user_credentials.with_file_name("malformed.json");
    std::fs::write(
        &malformed,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Principal":"*"}]}"#,
    )
    .unwrap();
    let malformed_arg = format!("file://{}", malformed.display());
    admin.err(
        &[
            "iam",
            "put-user-policy",
            "--user-name",
            &name,
            "--policy-name",
            "bad",
            "--policy-document",
            &malformed_arg,
        ],
        "MalformedPolicyDocument",
    );
    admin.err(
        &[
            "iam",
            "put-user-policy",
            "--user-name",
            &name,
            "--policy-name",
            "bad",
            "--policy-document",
            "{not json",
        ],
        "MalformedPolicyDocument",
    );
    let huge = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:DescribeRepositories",
        "Resource": (0..60).map(|i| format!("arn:aws:ecr:*:*:repository/team-{i:03}/*")).collect::<Vec<_>>()}]});
    admin.err(
        &[
            "iam",
            "put-user-policy",
            "--user-name",
            &name,
            "--policy-name",
            "huge",
            "--policy-document",
            &huge.to_string(),
        ],
        "LimitExceeded",
    );
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "Describe", "Effect": "Allow", "Action": "ecr:DescribeRepositories", "Resource": "*"},
        {"Sid": "Self", "Effect": "Allow", "Action": ["iam:GetUser", "iam:ListAccessKeys"], "Resource": user_arn}]});
    admin.ok(&[
        "iam",
        "put-user-policy",
        "--user-name",
        &name,
        "--policy-name",
        "ecr-read",
        "--policy-document",
        &policy.to_string(),
    ]);
    let got = admin.ok(&[
        "iam",
        "get-user-policy",
        "--user-name",
        &name,
        "--policy-name",
        "ecr-read",
    ]);
    assert_eq!(got["UserName"], name.as_str());
    assert_eq!(got["PolicyName"], "ecr-read");
    // The CLI URL-decodes and parses the document: it round-trips exactly.
    assert_eq!(got["PolicyDocument"], policy);
    let listed = admin.ok(&["iam", "list-user-policies", "--user-name", &name]);
    assert_eq!(listed["PolicyNames"], json!(["ecr-read"]));
    admin.err(
        &[
            "iam",
            "get-user-policy",
            "--user-name",
            &name,
            "--policy-name",
            "nope",
        ],
        "NoSuchEntity",
    );
    let repos = user.ok(&["ecr", "describe-repositories"]);
    assert!(repos["repositories"].is_array(), "{repos}");
    assert_eq!(
        user.ok(&["iam", "get-user"])["User"]["Arn"],
        user_arn.as_str()
    );
    user.err(
        &["iam", "create-user", "--user-name", &format!("x-{sfx}")],
        "AccessDenied",
    );

    // A group policy governs its members; removing it takes the permission away again.
    let group_policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iam:ListUsers", "Resource": "*"}]});
    admin.ok(&[
        "iam",
        "put-group-policy",
        "--group-name",
        &group,
        "--policy-name",
        "list",
        "--policy-document",
        &group_policy.to_string(),
    ]);
    let got = admin.ok(&[
        "iam",
        "get-group-policy",
        "--group-name",
        &group,
        "--policy-name",
        "list",
    ]);
    assert_eq!(got["GroupName"], group.as_str());
    assert_eq!(got["PolicyDocument"], group_policy);
    assert_eq!(
        admin.ok(&["iam", "list-group-policies", "--group-name", &group])["PolicyNames"],
        json!(["list"])
    );
    assert!(names(&user.ok(&["iam", "list-users"])["Users"], "UserName").contains(&name));
    admin.ok(&[
        "iam",
        "delete-group-policy",
        "--group-name",
        &group,
        "--policy-name",
        "list",
    ]);
    admin.err(
        &[
            "iam",
            "delete-group-policy",
            "--group-name",
            &group,
            "--policy-name",
            "list",
        ],
        "NoSuchEntity",
    );
    user.err(&["iam", "list-users"], "AccessDenied");

    // Access keys: two at most; a deactivated key stops working at once.
    let second = admin.ok(&["iam", "create-access-key", "--user-name", &name])["AccessKey"].clone();
    admin.err(
        &["iam", "create-access-key", "--user-name", &name],
        "LimitExceeded",
    );
    let keys = user.ok(&["iam", "list-access-keys"]);
    let mut ids = names(&keys["AccessKeyMetadata"], "AccessKeyId");
    ids.sort();
    let mut want = vec![
        key_id.clone(),
        second["AccessKeyId"].as_str().unwrap().to_string(),
    ];
    want.sort();
    assert_eq!(ids, want, "{keys}");
    admin.ok(&[
        "iam",
        "update-access-key",
        "--user-name",
        &name,
        "--access-key-id",
        &key_id,
        "--status",
        "Inactive",
    ]);
    let keys = admin.ok(&["iam", "list-access-keys", "--user-name", &name]);
    let first = keys["AccessKeyMetadata"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["AccessKeyId"] == key_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(first["Status"], "Inactive");
    user.err(&["sts", "get-caller-identity"], "InvalidClientTokenId");
    user.err(
        &["ecr", "describe-repositories"],
        "UnrecognizedClientException",
    );
    admin.ok(&[
        "iam",
        "update-access-key",
        "--user-name",
        &name,
        "--access-key-id",
        &key_id,
        "--status",
        "Active",
    ]);
    assert_eq!(
        user.ok(&["sts", "get-caller-identity"])["Arn"],
        user_arn.as_str()
    );
    admin.err(
        &[
            "iam",
            "delete-access-key",
            "--user-name",
            &other,
            "--access-key-id",
            &key_id,
        ],
        "NoSuchEntity",
    );

    // A user is deleted only once its keys, policies and memberships are gone.
    admin.err(
        &["iam", "delete-user", "--user-name", &name],
        "DeleteConflict",
    );
    for id in [key_id.as_str(), second["AccessKeyId"].as_str().unwrap()] {
        admin.ok(&[
            "iam",
            "delete-access-key",
            "--user-name",
            &name,
            "--access-key-id",
            id,
        ]);
    }
    user.err(&["sts", "get-caller-identity"], "InvalidClientTokenId");
    admin.err(
        &["iam", "delete-user", "--user-name", &name],
        "DeleteConflict",
    );
    admin.ok(&[
        "iam",
        "delete-user-policy",
        "--user-name",
        &name,
        "--policy-name",
        "ecr-read",
    ]);
    admin.err(
        &["iam", "delete-user", "--user-name", &name],
        "DeleteConflict",
    );
    admin.ok(&[
        "iam",
        "remove-user-from-group",
        "--group-name",
        &group,
        "--user-name",
        &name,
    ]);
    assert_eq!(
        admin.ok(&["iam", "get-group", "--group-name", &group])["Users"],
        json!([])
    );
    admin.ok(&["iam", "delete-user", "--user-name", &name]);
    admin.err(&["iam", "get-user", "--user-name", &name], "NoSuchEntity");
    admin.ok(&["iam", "delete-user", "--user-name", &other]);
}

/// `/` is shared: form-encoded POSTs and `GET /?Action=` are the Query API (XML errors),
/// JSON POSTs stay the ECR API, other requests the OCI "not found". Needs no AWS CLI.
#[test]
fn root_routes_query_json_and_oci_requests_apart() {
    let reg = TestRegistry::start();
    let http = reqwest::blocking::Client::new();
    let base = reg.base_url();
    let form = "application/x-www-form-urlencoded; charset=utf-8";

    // Unsigned Query requests: the XML error of the service they name.
    let resp = http
        .post(format!("{base}/"))
        .header("content-type", form)
        .body("Action=ListUsers&Version=2010-05-08")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.headers()["content-type"], "text/xml");
    assert!(resp.headers().contains_key("x-amzn-requestid"));
    let body = resp.text().unwrap();
    assert!(
        body.starts_with("<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">")
            && body.contains("<Code>MissingAuthenticationToken</Code>"),
        "{body}"
    );
    let resp = http
        .get(format!(
            "{base}/?Action=GetCallerIdentity&Version=2011-06-15"
        ))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 403);
    let body = resp.text().unwrap();
    assert!(
        body.contains("sts.amazonaws.com")
            && body.contains("<Code>MissingAuthenticationToken</Code>"),
        "{body}"
    );
    let resp = http
        .post(format!("{base}/"))
        .header("content-type", form)
        .body("Action=ListRoles&Version=2010-05-08")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().unwrap().contains("<Code>InvalidAction</Code>"));

    // A JSON body without a target is still ECR's, as is a form body with a target.
    let resp = http.post(format!("{base}/")).body("{}").send().unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["content-type"], "application/x-amz-json-1.1");
    let v: Value = resp.json().unwrap();
    assert_eq!(v["__type"], "UnknownOperationException");
    let resp = http
        .post(format!("{base}/"))
        .header("content-type", form)
        .header(
            "x-amz-target",
            "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories",
        )
        .body("{}")
        .send()
        .unwrap();
    let v: Value = resp.json().unwrap();
    assert_eq!(v["__type"], "MissingAuthenticationTokenException");

    // GET / without an Action, and other methods, are the OCI "not found".
    for resp in [
        http.get(format!("{base}/")).send().unwrap(),
        http.get(format!("{base}/?foo=bar")).send().unwrap(),
        http.put(format!("{base}/?Action=ListUsers"))
            .send()
            .unwrap(),
    ] {
        assert_eq!(resp.status(), 404);
        let v: Value = resp.json().unwrap();
        assert!(v["errors"].is_array(), "{v}");
    }
}

/// `berth policy ...` on the registry's data directory; the JSON it prints.
fn berth_policy(data: &Path, args: &[&str]) -> CmdOutput {
    let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
    c.arg("policy")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("BERTH_CONFIG");
    run(c, CMD_TIMEOUT)
}

/// Waits (at most 30 s) until `aws args` succeeds: the server's parsed-policy cache keeps a
/// policy another process removed for `[auth] credential_cache_secs` (2 s).
fn succeeds_soon(aws: &Aws, args: &[&str]) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = aws.run(args);
        if out.success() {
            return out.json();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still failing after the policy was removed\n{}",
            out.report()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A repository policy, or a registry policy, that denies everyone (the root included)
/// cannot be removed through the API; the operator removes it with `berth policy` on the
/// data directory, and the running server lets the root in again.
#[test]
fn the_operator_removes_policies_that_lock_the_root_out() {
    if !have_awscli() {
        return;
    }
    let reg = TestRegistry::start();
    let Some(data) = reg.data_dir() else {
        eprintln!(
            "skipped: needs a spawned berth for its data directory (BERTH_E2E_REGISTRY is set)"
        );
        return;
    };
    let credentials = data.join("admin.credentials");
    let admin = Aws {
        endpoint: reg.base_url(),
        region: region_of(&credentials),
        credentials,
    };
    let repo = format!("locked/app-{}", unique_suffix());
    admin.ok(&["ecr", "create-repository", "--repository-name", &repo]);
    let deny = json!({"Version": "2012-10-17", "Statement": [{"Sid": "everyone", "Effect": "Deny",
        "Principal": "*", "Action": "ecr:*"}]})
    .to_string();
    admin.ok(&[
        "ecr",
        "set-repository-policy",
        "--repository-name",
        &repo,
        "--policy-text",
        &deny,
        "--force",
    ]);
    let describe = ["ecr", "list-images", "--repository-name", &repo];
    admin.err(&describe, "AccessDeniedException");
    admin.err(
        &[
            "ecr",
            "delete-repository-policy",
            "--repository-name",
            &repo,
        ],
        "AccessDeniedException",
    );

    let got = berth_policy(&data, &["get-repository-policy", "--repository", &repo]);
    assert!(got.success(), "{}", got.report());
    let got = got.json();
    assert_eq!(got["repositoryName"], repo.as_str());
    assert_eq!(got["registryId"], "000000000000");
    assert_eq!(got["policyText"], deny.as_str());
    let removed = berth_policy(&data, &["delete-repository-policy", "--repository", &repo]);
    assert!(removed.success(), "{}", removed.report());
    assert_eq!(removed.json()["policyText"], deny.as_str());
    let listed = succeeds_soon(&admin, &describe);
    assert_eq!(listed["imageIds"], json!([]));
    let gone = berth_policy(&data, &["get-repository-policy", "--repository", &repo]);
    assert!(
        !gone.success() && gone.stderr_str().contains("has no repository policy"),
        "{}",
        gone.report()
    );
    let missing = berth_policy(
        &data,
        &["delete-repository-policy", "--repository", "no/such-repo"],
    );
    assert!(
        !missing.success() && missing.stderr_str().contains("does not exist in account"),
        "{}",
        missing.report()
    );

    // A registry policy denying everyone shuts the root out of every repository; the
    // operator removes it the same way.
    let deny_registry = json!({"Version": "2012-10-17", "Statement": [{"Sid": "everyone",
        "Effect": "Deny", "Principal": "*", "Action": "ecr:*", "Resource": "*"}]})
    .to_string();
    admin.ok(&[
        "ecr",
        "put-registry-policy",
        "--policy-text",
        &deny_registry,
    ]);
    admin.err(&describe, "AccessDeniedException");
    let got = berth_policy(&data, &["get-registry-policy"]);
    assert!(got.success(), "{}", got.report());
    assert_eq!(got.json()["policyText"], deny_registry.as_str());
    let removed = berth_policy(&data, &["delete-registry-policy"]);
    assert!(removed.success(), "{}", removed.report());
    succeeds_soon(&admin, &describe);
    admin.err(
        &["ecr", "get-registry-policy"],
        "RegistryPolicyNotFoundException",
    );
}
