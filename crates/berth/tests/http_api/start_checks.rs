//! Bad configuration stops `berth serve` at start with a clear error, never a half-started
//! node: wrong S3 credentials, a missing bucket, an unreachable S3 endpoint, an unreachable
//! database, and a schema newer than the binary (SQLite and PostgreSQL, the database left
//! as it was). Each refused start is watched from outside: it exits non-zero within a
//! bound, its port never accepts a connection meanwhile, it writes no address file, and
//! its message names the problem without any secret.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};

use berth_testkit::garage::Garage;

use super::s3::s3_env;
use super::*;

/// What a refused start printed, once it has been checked to be one.
struct Refusal {
    stderr: String,
    elapsed: Duration,
}

/// Runs `berth serve` with `env` on `data_dir` and a port chosen here, connecting to that
/// port every 20 ms until the process exits: it must exit non-zero within `within`, and
/// no connection may ever be accepted (the port is bound but not listened on until every
/// check has passed).
fn refused_start(env: &[(String, String)], data_dir: &Path, within: Duration) -> Refusal {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (work.path().join("stdout"), work.path().join("stderr"));
    let addr_file = work.path().join("addr");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--listen", &addr.to_string(), "--data-dir"])
        .arg(data_dir)
        .arg("--addr-file")
        .arg(&addr_file)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let mut accepted = 0;
    let mut attempts = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > within {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "berth serve did not stop within {within:?}\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        attempts += 1;
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            accepted += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default()
        + &std::fs::read_to_string(&out_path).unwrap_or_default();
    assert!(!status.success(), "berth serve started: {stderr}");
    assert_eq!(
        accepted, 0,
        "the port accepted {accepted} of {attempts} connections during a refused start\n{stderr}"
    );
    assert!(!addr_file.exists(), "an address file was written: {stderr}");
    assert!(
        !stderr.contains("is listening"),
        "the refused start said it listened: {stderr}"
    );
    Refusal { stderr, elapsed }
}

fn env_of(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `env` with `key` set to `value`.
fn with(mut env: Vec<(String, String)>, key: &str, value: &str) -> Vec<(String, String)> {
    env.retain(|(k, _)| k != key);
    env.push((key.to_string(), value.to_string()));
    env
}

/// An unknown access key and a wrong secret for a real one: S3 refuses them (Garage says
/// `AccessDenied`, "No such key" / "Invalid signature"), the start stops quickly with that,
/// naming the bucket, and neither secret appears.
#[test]
fn wrong_s3_credentials_stop_the_start_naming_the_refusal() {
    let g = Garage::start();
    let bucket = format!("berth-creds-{}", unique_suffix());
    g.bucket(&bucket);
    let wrong_secret = "f00d".repeat(16);
    let cases = [
        (
            "unknown key id",
            with(
                s3_env(&g, &bucket, false),
                "BERTH_STORAGE__S3__ACCESS_KEY_ID",
                "GK0123456789abcdef01234567",
            ),
            "No such key",
        ),
        (
            "wrong secret",
            with(
                s3_env(&g, &bucket, false),
                "BERTH_STORAGE__S3__SECRET_ACCESS_KEY",
                &wrong_secret,
            ),
            "signature",
        ),
    ];
    for (what, env, garage_says) in cases {
        let dir = tempfile::tempdir().unwrap();
        let r = refused_start(&env, &dir.path().join("data"), Duration::from_secs(30));
        assert!(
            r.stderr.contains("S3 refused") && r.stderr.contains("AccessDenied"),
            "{what}: {}",
            r.stderr
        );
        assert!(r.stderr.contains(garage_says), "{what}: {}", r.stderr);
        assert!(r.stderr.contains(&bucket), "{what}: {}", r.stderr);
        assert!(
            !r.stderr.contains(&g.secret_access_key) && !r.stderr.contains(&wrong_secret),
            "{what}: a secret leaked: {}",
            r.stderr
        );
        assert!(
            r.elapsed < Duration::from_secs(10),
            "{what}: took {:?}",
            r.elapsed
        );
    }
    // The control: the right credentials on the same bucket start, and the check's probe
    // object is gone afterwards.
    let env = s3_env(&g, &bucket, false);
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let reg = TestRegistry::start_with_env(&env_refs);
    assert_eq!(
        http().get(reg.v2("")).send().unwrap().status().as_u16(),
        200
    );
    if require_clients(&["aws"]) {
        let out = run_ok(
            Command::new("aws")
                .args(["s3", "ls", "--recursive", "--endpoint-url", &g.endpoint])
                .arg(format!("s3://{bucket}/"))
                .env("AWS_ACCESS_KEY_ID", &g.access_key_id)
                .env("AWS_SECRET_ACCESS_KEY", &g.secret_access_key)
                .env("AWS_DEFAULT_REGION", &g.region)
                .env("AWS_CONFIG_FILE", "/dev/null")
                .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        );
        assert!(
            !out.stdout_str().contains("startup-probe"),
            "the probe object was left: {}",
            out.stdout_str()
        );
    }
}

/// A bucket that does not exist: "bucket X does not exist", quickly, before any metadata
/// is written (no `meta.db` in the data directory).
#[test]
fn a_missing_bucket_stops_the_start_before_the_metadata_is_opened() {
    let g = Garage::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let r = refused_start(
        &s3_env(&g, "no-such-bucket", false),
        &data,
        Duration::from_secs(30),
    );
    assert!(
        r.stderr
            .contains("bucket \"no-such-bucket\" does not exist"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains(&g.secret_access_key), "{}", r.stderr);
    assert!(r.elapsed < Duration::from_secs(10), "took {:?}", r.elapsed);
    assert!(!data.join("meta.db").exists(), "meta.db was created");
}

/// An endpoint where nothing listens: "cannot reach the S3 endpoint", in seconds (the
/// serving client would retry connection errors for minutes; the check retries once).
#[test]
fn an_unreachable_s3_endpoint_stops_the_start_within_seconds() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let env = env_of(&[
        ("BERTH_STORAGE__BACKEND", "s3"),
        ("BERTH_STORAGE__S3__BUCKET", "registry"),
        ("BERTH_STORAGE__S3__REGION", "garage"),
        ("BERTH_STORAGE__S3__ENDPOINT", &endpoint),
        ("BERTH_STORAGE__S3__PATH_STYLE", "true"),
        ("BERTH_STORAGE__S3__ACCESS_KEY_ID", "GKunreachable"),
        ("BERTH_STORAGE__S3__SECRET_ACCESS_KEY", "sekrit-s3-secret"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let r = refused_start(&env, &dir.path().join("data"), Duration::from_secs(60));
    assert!(
        r.stderr
            .contains(&format!("cannot reach the S3 endpoint {endpoint}")),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("sekrit-s3-secret"), "{}", r.stderr);
    assert!(r.elapsed < Duration::from_secs(15), "took {:?}", r.elapsed);
}

/// `meta.db` migrated by a newer Berth (one schema version past this binary's): refused,
/// naming both versions, and the file is byte for byte as it was.
#[test]
fn a_newer_sqlite_schema_is_refused_and_left_untouched() {
    let mut reg = TestRegistry::start();
    let data = reg.data_dir().expect("spawned");
    let (status, _) = reg.stop().expect("running");
    assert!(status.success());
    let ours = berth_meta::schema::latest_version();
    let newer = ours + 1;
    let db = data.join("meta.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute(
            "INSERT INTO schema_migrations (version, applied_ms) VALUES (?1, 0)",
            [newer],
        )
        .unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    let r = refused_start(&[], &data, Duration::from_secs(30));
    assert!(
        r.stderr.contains(&format!("schema version {newer}"))
            && r.stderr.contains(&format!("supports ({ours})")),
        "{}",
        r.stderr
    );
    assert!(
        std::fs::read(&db).unwrap() == before,
        "meta.db changed during the refused start"
    );
}

/// A PostgreSQL database migrated by a newer Berth: refused, naming both versions, and
/// nothing created or recorded in it.
#[test]
fn a_newer_postgres_schema_is_refused_and_left_untouched() {
    let pg = berth_testkit::postgres::shared();
    let db = pg.create_database().unwrap();
    let ours = berth_meta::schema::latest_version();
    let newer = ours + 1;
    db.psql(&format!(
        "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL);
         INSERT INTO schema_migrations VALUES ({newer}, 0);"
    ))
    .unwrap();
    let tables = "SELECT string_agg(table_name, ',' ORDER BY table_name) \
                  FROM information_schema.tables WHERE table_schema = 'public'";
    let before = db.psql(tables).unwrap();
    let env = env_of(&[
        ("BERTH_META__BACKEND", "postgres"),
        ("BERTH_META__URL", &db.url()),
        ("BERTH_STORAGE__MASTER_KEY", super::postgres::MASTER_KEY),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let r = refused_start(&env, &dir.path().join("data"), Duration::from_secs(60));
    assert!(
        r.stderr.contains(&format!("schema version {newer}"))
            && r.stderr.contains(&format!("supports ({ours})")),
        "{}",
        r.stderr
    );
    assert_eq!(db.psql(tables).unwrap(), before);
    assert_eq!(
        db.psql("SELECT string_agg(version::text, ',') FROM schema_migrations")
            .unwrap()
            .trim(),
        newer.to_string()
    );
}

/// A database nothing listens for: the start stops with the PostgreSQL error, without the
/// URL's password, never having listened.
#[test]
fn an_unreachable_database_stops_the_start_without_listening() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://berth:sekrit-pw@127.0.0.1:{port}/berth?sslmode=disable");
    let env = env_of(&[
        ("BERTH_META__BACKEND", "postgres"),
        ("BERTH_META__URL", &url),
        ("BERTH_META__ACQUIRE_TIMEOUT_SECS", "5"),
        ("BERTH_STORAGE__MASTER_KEY", super::postgres::MASTER_KEY),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let r = refused_start(&env, &dir.path().join("data"), Duration::from_secs(60));
    assert!(
        r.stderr.contains("PostgreSQL") && r.stderr.contains("meta.url"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("sekrit-pw"),
        "the password leaked: {}",
        r.stderr
    );
    assert!(r.elapsed < Duration::from_secs(20), "took {:?}", r.elapsed);
}
