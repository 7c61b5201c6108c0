//! Scale-out: three `berth serve` processes (the real binary, each with its own data
//! directory) on one PostgreSQL database, one Garage bucket and one master key, with
//! credentials on, behind HAProxy (round-robin per request, no stickiness, health-checked
//! on `/healthz`; `berth-testkit`). The fixture ([`Cluster`]) is here, with the tests of
//! state moving between nodes: a chunked upload started, continued and completed on three
//! different nodes, and a tag moved on one node served by the others within the cache
//! follower's bound. `cluster_clients`: the real clients through the balancer;
//! `cluster_failover`: the singleton passes once per cluster, and a node killed mid-push.

use std::path::PathBuf;

use berth_testkit::garage::Garage;
use berth_testkit::haproxy::Haproxy;
use berth_testkit::postgres::PgDatabase;

use super::postgres::node_env;
use super::s3::metric;
use super::*;

/// How many nodes the cluster runs.
pub(super) const NODES: usize = 3;

/// The documented staleness bound of a node's manifest cache (docs/ARCHITECTURE.md, "A
/// pull"): `CACHE_FOLLOW_EVERY` (1 s) plus one outbox read, here allowed one more second
/// (the read, and this test's polling on a shared 2-core machine).
pub(super) const CACHE_STALENESS_BOUND: Duration = Duration::from_secs(2);

/// A three-node cluster behind a load balancer. Fields drop in order: the nodes stop
/// (releasing their leases in the database) before the balancer, the bucket's server and
/// the database go.
pub(super) struct Cluster {
    pub nodes: Vec<TestRegistry>,
    /// The balancer as a registry: what clients are given.
    pub front: TestRegistry,
    pub haproxy: Haproxy,
    pub garage: Garage,
    pub db: PgDatabase<'static>,
    /// The administrator's `admin.credentials`, written by the node that created the
    /// account.
    pub credentials: PathBuf,
}

impl Cluster {
    /// Starts the database, the bucket, three nodes and the balancer. `extra`
    /// is more configuration for every node (short background intervals, redirects).
    pub fn start(redirect: bool, extra: &[(&str, &str)]) -> Cluster {
        let db = berth_testkit::postgres::shared()
            .create_database()
            .expect("a database for the cluster");
        let garage = Garage::start();
        let bucket = format!("berth-cluster-{}", unique_suffix());
        garage.bucket(&bucket);
        let mut env: Vec<(String, String)> = node_env(&garage, &bucket, &db.url())
            .into_iter()
            .filter(|(k, _)| k != "BERTH_STORAGE__REDIRECT")
            .collect();
        env.push(("BERTH_STORAGE__REDIRECT".into(), redirect.to_string()));
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        // One after another, from this thread: a node dies with the thread that spawned it
        // (PR_SET_PDEATHSIG), so not from short-lived threads.
        let nodes: Vec<TestRegistry> = (0..NODES)
            .map(|_| TestRegistry::start_with_env(&env))
            .collect();
        let credentials = nodes
            .iter()
            .filter_map(|n| n.data_dir())
            .map(|d| d.join("admin.credentials"))
            .find(|p| p.is_file())
            .expect("one node wrote admin.credentials");
        let backends: Vec<std::net::SocketAddr> = nodes
            .iter()
            .map(|n| n.addr().parse().expect("node address"))
            .collect();
        let haproxy = Haproxy::start(&backends);
        haproxy.wait_for_servers(&[true; NODES], Duration::from_secs(30));
        let front = TestRegistry::in_front(&haproxy.addr().to_string(), &credentials);
        Cluster {
            nodes,
            front,
            haproxy,
            garage,
            db,
            credentials,
        }
    }

    /// The sum of one `/metrics` series over the nodes `which` (indexes into `nodes`).
    pub fn metric_sum(&self, which: &[usize], series: &str) -> f64 {
        which.iter().map(|&i| metric(&self.nodes[i], series)).sum()
    }

    /// Every node's index.
    pub fn all(&self) -> Vec<usize> {
        (0..self.nodes.len()).collect()
    }

    /// `/v2` requests each node answered so far: proof the balancer spread the work.
    pub fn requests_per_node(&self) -> Vec<f64> {
        self.nodes
            .iter()
            .map(|n| {
                let text = http()
                    .get(format!("{}/metrics", n.base_url()))
                    .send()
                    .and_then(|r| r.text())
                    .unwrap_or_default();
                text.lines()
                    .filter(|l| l.starts_with("berth_http_requests_total{edge=\"oci\""))
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum()
            })
            .collect()
    }

    /// Every node's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            s.push_str(&format!("--- node {i} ---\n{}\n", n.server_log()));
        }
        s
    }
}

/// Asserts every node answered some `/v2` requests.
pub(super) fn assert_every_node_served(c: &Cluster) {
    let per_node = c.requests_per_node();
    assert!(
        per_node.iter().all(|&n| n > 0.0),
        "the balancer left a node idle: /v2 requests per node {per_node:?}"
    );
}

/// `Location` of an upload, as a URL on `node` (the path and query only, so any node).
fn on_node(node: &TestRegistry, location: &str) -> String {
    node.resolve(&TestRegistry::path_of(location))
}

/// A chunked upload started on node 0 (POST and a first PATCH), continued on node 1 (the
/// status, then a PATCH), completed on node 2 (PUT with the last bytes): each node takes the
/// previous one's `Location` as it is. The blob is then pulled through the balancer and
/// from every node, byte for byte, and a manifest using it is accepted by the balancer.
#[test]
fn cluster_chunked_upload_started_continued_and_completed_on_three_nodes() {
    if !require_clients(&["curl"]) {
        return;
    }
    let c = Cluster::start(false, &[]);
    let [a, b, n2] = [&c.nodes[0], &c.nodes[1], &c.nodes[2]];
    let repo = c.front.repo("cluster-chunked");
    // 6 MiB + 1: across the 5 MiB part size of the S3 upload.
    let data = random_bytes(6 * 1024 * 1024 + 1);
    let digest = sha256_digest(&data);
    let (one, two) = (2 * 1024 * 1024, 5 * 1024 * 1024 + 17);

    let url = start_upload(a, &repo);
    let url = patch_chunk(a, &url, &data[..one], 0);

    let status = curl(&[&on_node(b, &url)]);
    assert_eq!(
        status.status,
        204,
        "node 1's status of node 0's upload: {}\n{}",
        status.body_str(),
        c.logs()
    );
    assert_eq!(received(status.header("range").expect("Range")), one);
    let url = on_node(b, status.header("location").expect("Location"));
    let url = patch_chunk(b, &url, &data[one..two], one);

    finish_upload(n2, &on_node(n2, &url), &digest, &data[two..]);

    assert_blob(&c.front, &repo, &digest, &data);
    for n in &c.nodes {
        assert_blob(n, &repo, &digest, &data);
    }
    // The blob is usable: a manifest naming it goes in through the balancer.
    let config = push_blob(&c.front, &repo, b"{}");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config, "size": 2},
        "layers": [{"mediaType": OCI_LAYER_TAR, "digest": digest, "size": data.len()}],
    }))
    .unwrap();
    let r = put_manifest(&c.front, &repo, "v1", OCI_MANIFEST, &manifest);
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().unwrap_or_default());
}

/// `GET <repo>/manifests/<tag>` on `node`: the digest it serves.
fn served_digest(node: &TestRegistry, repo: &str, tag: &str) -> String {
    let r = http()
        .get(node.v2(&format!("{repo}/manifests/{tag}")))
        .header("accept", OCI_MANIFEST)
        .send()
        .expect("GET manifest");
    assert_eq!(r.status().as_u16(), 200, "GET {repo}:{tag}");
    header(&r, "docker-content-digest")
}

/// A tag moved through node 0 is served by nodes 1 and 2 (whose caches held the old
/// target: they served it just before) within the documented staleness bound. Three moves;
/// the staleness measured (from the moving PUT's answer to the first new answer) is
/// printed.
#[test]
fn cluster_tag_moved_on_one_node_is_served_by_the_others_within_the_bound() {
    let c = Cluster::start(false, &[]);
    let repo = c.front.repo("cluster-tags");
    let (_, mut current) = push_small_image(&c.nodes[0], &repo, "latest");
    let mut worst = Duration::ZERO;
    for round in 0..3 {
        // Every node's cache now holds the current target of `latest`.
        for n in &c.nodes {
            assert_eq!(served_digest(n, &repo, "latest"), current, "round {round}");
        }
        let (_, moved) = push_small_image(&c.nodes[0], &repo, "latest");
        let moved_at = Instant::now();
        assert_ne!(moved, current);
        let mut pending: Vec<usize> = vec![1, 2];
        while !pending.is_empty() {
            pending.retain(|&i| {
                let got = served_digest(&c.nodes[i], &repo, "latest");
                if got == moved {
                    let staleness = moved_at.elapsed();
                    eprintln!("round {round}: node {i} served the moved tag after {staleness:?}");
                    worst = worst.max(staleness);
                    return false;
                }
                assert_eq!(got, current, "node {i} served a third digest");
                true
            });
            assert!(
                moved_at.elapsed() <= CACHE_STALENESS_BOUND,
                "nodes {pending:?} still served the old target of the tag {:?} after the move \
                 (bound {CACHE_STALENESS_BOUND:?})",
                moved_at.elapsed()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        current = moved;
    }
    eprintln!("worst staleness of a moved tag: {worst:?} (bound {CACHE_STALENESS_BOUND:?})");
    // And through the balancer, every request agrees now.
    for _ in 0..6 {
        assert_eq!(served_digest(&c.front, &repo, "latest"), current);
    }
}
