//! Operations over real HTTP: `/metrics` counts a real client's push and pull under the
//! right labels; a separately bound metrics listener serves it and the public port then
//! does not; `X-Request-Id` is on every response, refusals (401, 403, 429) and `/healthz`
//! included, and a sane incoming id is reused.

use std::collections::HashMap;

use super::*;

/// A client without the harness's default administrator credentials.
fn anonymous_http() -> reqwest::blocking::Client {
    install_crypto_provider();
    reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
}

/// The samples of a Prometheus text exposition, by series (`name{labels}`).
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            (
                series.to_string(),
                value
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {l:?}")),
            )
        })
        .collect()
}

fn scrape(url: &str) -> (String, HashMap<String, f64>) {
    let resp = anonymous_http().get(url).send().unwrap();
    assert_eq!(resp.status(), 200, "GET {url}");
    assert_eq!(
        header(&resp, "content-type"),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(!header(&resp, "x-request-id").is_empty());
    let text = resp.text().unwrap();
    let s = samples(&text);
    (text, s)
}

fn value(s: &HashMap<String, f64>, series: &str) -> f64 {
    s.get(series).copied().unwrap_or(0.0)
}

fn requests(edge: &str, op: &str, status: u16) -> String {
    format!("berth_http_requests_total{{edge=\"{edge}\",operation=\"{op}\",status=\"{status}\"}}")
}

fn auth_failures(edge: &str, reason: &str) -> String {
    format!("berth_auth_failures_total{{edge=\"{edge}\",reason=\"{reason}\"}}")
}

#[test]
fn metrics_count_a_real_clients_push_and_pull() {
    if !require_clients(&["skopeo", "umoci"]) {
        return;
    }
    let reg = TestRegistry::start();
    let metrics_url = format!("{}/metrics", reg.base_url());
    let (_, before) = scrape(&metrics_url);

    let env = ContainersEnv::new(&reg);
    let src = OciLayout::init(&env.scratch("src"));
    let layer_size = 256 * 1024;
    src.add_random_image("v1", "amd64", 1, layer_size);
    let repo = reg.repo("metrics");
    let creds = format!("{ADMIN_KEY_ID}:{ADMIN_SECRET}");
    let push = run(
        env.skopeo().args([
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &creds,
            &src.oci_ref("v1"),
            &env.docker_ref(&repo, "v1"),
        ]),
        CMD_TIMEOUT,
    );
    assert!(push.success(), "{}", push.report());
    let dst = env.scratch("dst");
    let pull = run(
        env.skopeo().args([
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            &creds,
            &env.docker_ref(&repo, "v1"),
            &format!("oci:{}:v1", dst.display()),
        ]),
        CMD_TIMEOUT,
    );
    assert!(pull.success(), "{}", pull.report());

    let (text, after) = scrape(&metrics_url);
    let moved = |series: &str| value(&after, series) - value(&before, series);
    assert!(moved(&requests("oci", "PutManifest", 201)) >= 1.0, "{text}");
    assert!(
        moved(&requests("oci", "CompleteUpload", 201)) >= 1.0,
        "{text}"
    );
    assert!(moved(&requests("oci", "GetManifest", 200)) >= 1.0, "{text}");
    assert!(moved(&requests("oci", "GetBlob", 200)) >= 1.0, "{text}");
    // skopeo's first, anonymous try is answered 401 by the gate, under the operation it addressed.
    assert!(moved(&requests("oci", "ApiVersion", 401)) >= 1.0, "{text}");
    assert!(
        moved(&auth_failures("oci", "missing_credentials")) >= 1.0,
        "{text}"
    );
    let put_count = "berth_http_request_duration_seconds_count{edge=\"oci\",operation=\"PutManifest\",status=\"201\"}";
    assert!(moved(put_count) >= 1.0, "{text}");
    let put_inf = "berth_http_request_duration_seconds_bucket{edge=\"oci\",operation=\"PutManifest\",status=\"201\",le=\"+Inf\"}";
    assert_eq!(value(&after, put_inf), value(&after, put_count), "{text}");
    // The random layer is incompressible: at least its size went each way.
    assert!(
        moved("berth_http_request_body_bytes_total") >= layer_size as f64,
        "{text}"
    );
    assert!(
        moved("berth_http_response_body_bytes_total") >= layer_size as f64,
        "{text}"
    );
    assert!(
        value(
            &after,
            "berth_manifest_cache_lookups_total{kind=\"manifest\",result=\"hit\"}"
        ) + value(
            &after,
            "berth_manifest_cache_lookups_total{kind=\"manifest\",result=\"miss\"}"
        ) >= 1.0,
        "{text}"
    );
    assert_eq!(value(&after, "berth_uploads_in_progress"), 0.0, "{text}");
    assert!(after.contains_key("berth_gc_passes_total"), "{text}");
    assert!(
        after.contains_key("berth_lifecycle_images_expired_total"),
        "{text}"
    );
    // Labels are bounded: no repository names or digests.
    let stem = repo.rsplit('/').next().unwrap();
    assert!(!text.contains(stem) && !text.contains("sha256"), "{text}");
}

#[test]
fn request_ids_on_every_response_and_a_separate_metrics_listener() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("berth.toml");
    let metrics_addr = dir.path().join("metrics.addr");
    std::fs::write(
        &config,
        format!(
            r#"
[metrics]
listen = "127.0.0.1:0"
addr_file = "{}"

[limits]
enabled = true
burst_seconds = 1
default_rate = 1000

[limits.rates]
"ecr:BatchGetImage" = 2
"#,
            metrics_addr.display()
        ),
    )
    .unwrap();
    let reg = TestRegistry::start_with_env(&[("BERTH_CONFIG", config.to_str().unwrap())]);
    let repo = reg.repo("ids");
    let (_, digest) = push_small_image(&reg, &repo, "v1");
    let anon = anonymous_http();
    let id_of = |resp: &reqwest::blocking::Response| {
        let id = header(resp, "x-request-id");
        assert!(!id.is_empty(), "{} lacks X-Request-Id", resp.url());
        id
    };

    // /healthz, and the client's own id reused when it is sane, replaced when it is not.
    let resp = anon
        .get(format!("{}/healthz", reg.base_url()))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    id_of(&resp);
    let resp = anon
        .get(format!("{}/healthz", reg.base_url()))
        .header("x-request-id", "trace-42.a_b:c")
        .send()
        .unwrap();
    assert_eq!(id_of(&resp), "trace-42.a_b:c");
    let resp = anon
        .get(format!("{}/healthz", reg.base_url()))
        .header("x-request-id", "x".repeat(500))
        .send()
        .unwrap();
    assert_ne!(id_of(&resp), "x".repeat(500));

    // 401 from the gate (no credentials, then a wrong password), with one id in header and log.
    let resp = anon.get(reg.v2("")).send().unwrap();
    assert_eq!(resp.status(), 401);
    id_of(&resp);
    let resp = anon
        .get(reg.v2(&format!("{repo}/tags/list")))
        .basic_auth(ADMIN_KEY_ID, Some("not-the-secret"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    id_of(&resp);
    // 403: a download grant that does not verify.
    let resp = anon
        .get(reg.v2(&format!("{repo}/blobs/{digest}?X-Berth-Download=forged")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 403);
    id_of(&resp);
    // 429 over the BatchGetImage quota.
    let http = http();
    let statuses: Vec<(u16, String)> = (0..6)
        .map(|_| {
            let r = http
                .get(reg.v2(&format!("{repo}/manifests/v1")))
                .header("accept", OCI_MANIFEST)
                .send()
                .unwrap();
            (r.status().as_u16(), id_of(&r))
        })
        .collect();
    assert!(statuses.iter().any(|(s, _)| *s == 429), "{statuses:?}");
    // The ECR and IAM edges: their AWS request id and X-Request-Id are the same id.
    for (target, content_type) in [
        (
            "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories",
            "application/x-amz-json-1.1",
        ),
        ("", "application/x-www-form-urlencoded"),
    ] {
        let mut req = anon
            .post(format!("{}/", reg.base_url()))
            .header("content-type", content_type)
            .body(if target.is_empty() {
                "Action=ListUsers&Version=2010-05-08"
            } else {
                "{}"
            });
        if !target.is_empty() {
            req = req.header("x-amz-target", target);
        }
        let resp = req.send().unwrap();
        assert!(
            resp.status().is_client_error(),
            "{target}: {}",
            resp.status()
        );
        assert_eq!(id_of(&resp), header(&resp, "x-amzn-requestid"), "{target}");
    }
    // The fallback 404.
    let resp = anon
        .get(format!("{}/nowhere", reg.base_url()))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 404);
    id_of(&resp);

    // /metrics is not on the public port; the metrics listener serves it.
    let resp = anon
        .get(format!("{}/metrics", reg.base_url()))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 404);
    id_of(&resp);
    let addr = std::fs::read_to_string(&metrics_addr).unwrap();
    let (text, s) = scrape(&format!("http://{}/metrics", addr.trim()));
    assert!(
        value(&s, &requests("oci", "GetManifest", 429)) >= 1.0,
        "{text}"
    );
    assert!(
        value(&s, &requests("oci", "ListTags", 401)) >= 1.0,
        "{text}"
    );
    assert!(value(&s, &requests("oci", "GetBlob", 403)) >= 1.0, "{text}");
    assert!(
        value(&s, &requests("server", "Healthz", 200)) >= 3.0,
        "{text}"
    );
    assert!(
        value(&s, &requests("server", "NotFound", 404)) >= 2.0,
        "{text}"
    );
    assert!(
        value(&s, &requests("ecr", "DescribeRepositories", 400)) >= 1.0,
        "{text}"
    );
    assert!(
        value(&s, &requests("iam", "ListUsers", 403)) >= 1.0,
        "{text}"
    );
    assert!(
        value(&s, &auth_failures("oci", "bad_credentials")) >= 1.0,
        "{text}"
    );
    assert!(value(&s, &auth_failures("oci", "denied")) >= 1.0, "{text}");
    assert!(
        value(&s, &auth_failures("ecr", "missing_credentials")) >= 1.0,
        "{text}"
    );
    // The failed login was logged, without the password.
    let log = reg.server_log();
    assert!(log.contains("failed login"), "{log}");
    assert!(!log.contains("not-the-secret"), "{log}");
}
