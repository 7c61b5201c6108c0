//! The cluster's background work and a crash: the periodic passes (GC, lifecycle, upload
//! expiry) run once per period across the three nodes, not once per node; and a node
//! killed with SIGKILL in the middle of pushes (skopeo and chunked uploads through the
//! balancer, chunked uploads straight to it) loses nothing it acknowledged, its unfinished
//! uploads continue on the survivors, and the passes go on there.

use std::io::Read;
use std::sync::Mutex;
use std::thread;

use super::cluster::Cluster;
use super::*;

/// Every pass each second (GC working without rests), so a few seconds show the pattern.
const SHORT_PASSES: [(&str, &str); 4] = [
    ("BERTH_GC__INTERVAL_SECS", "1"),
    ("BERTH_GC__DUTY", "1"),
    ("BERTH_LIFECYCLE__INTERVAL_SECS", "1"),
    ("BERTH_UPLOADS__SWEEP_INTERVAL_SECS", "1"),
];
const PERIOD: Duration = Duration::from_secs(1);
const PASSES: [&str; 3] = ["gc", "lifecycle", "upload-expiry"];
/// `berth_jobs::DEFAULT_LEASE_TTL` (how long a dead holder keeps a pass) plus a period,
/// plus 5 s for a loaded machine: when the survivors must have taken every pass over.
const PASSES_RESUME_BOUND: Duration = Duration::from_secs(30 + 1 + 5);

fn passes_series(pass: &str, outcome: &str) -> String {
    format!(r#"berth_background_passes_total{{pass="{pass}",outcome="{outcome}"}}"#)
}

/// Succeeded passes of `pass` per node, in node order.
fn succeeded(c: &Cluster, which: &[usize], pass: &str) -> Vec<f64> {
    which
        .iter()
        .map(|&i| c.metric_sum(&[i], &passes_series(pass, "succeeded")))
        .collect()
}

/// Waits until `cond` holds; panics with `what` after `timeout`. Returns the time taken.
fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !cond() {
        assert!(
            started.elapsed() < timeout,
            "{what}: not within {timeout:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

/// Over a window of several periods, the passes the three nodes ran add up to one per
/// period (not three), none failed or lost its lease, and more than one node took turns.
#[test]
fn cluster_gc_and_lifecycle_run_once_per_period_across_the_cluster() {
    let c = Cluster::start(false, &SHORT_PASSES);
    let all = c.all();
    for pass in PASSES {
        wait_until(
            Duration::from_secs(20),
            &format!("a first {pass} pass"),
            || succeeded(&c, &all, pass).iter().sum::<f64>() >= 1.0,
        );
    }
    // [pass][node], one scrape of each node.
    let snapshot = || -> Vec<Vec<f64>> {
        let texts: Vec<String> = c
            .nodes
            .iter()
            .map(|n| {
                http()
                    .get(format!("{}/metrics", n.base_url()))
                    .send()
                    .and_then(|r| r.text())
                    .expect("GET /metrics")
            })
            .collect();
        PASSES
            .iter()
            .map(|pass| {
                let series = passes_series(pass, "succeeded");
                texts
                    .iter()
                    .map(|t| {
                        t.lines()
                            .find_map(|l| l.strip_prefix(series.as_str())?.trim().parse().ok())
                            .unwrap_or(0.0)
                    })
                    .collect()
            })
            .collect()
    };
    let started = Instant::now();
    let before = snapshot();
    let before_taken = Instant::now();
    // The measurement window itself: nothing to poll for.
    thread::sleep(8 * PERIOD);
    let after_start = Instant::now();
    let after = snapshot();
    let periods = |d: Duration| d.as_secs_f64() / PERIOD.as_secs_f64();
    // The window lies between these, whenever each node was scraped.
    let (shortest, longest) = (
        periods(after_start - before_taken),
        periods(started.elapsed()),
    );
    for (k, pass) in PASSES.iter().enumerate() {
        let per_node: Vec<f64> = after[k]
            .iter()
            .zip(&before[k])
            .map(|(a, b)| a - b)
            .collect();
        let total: f64 = per_node.iter().sum();
        eprintln!(
            "{pass}: {total} passes in {shortest:.2}..{longest:.2} periods across the cluster, \
             per node {per_node:?}"
        );
        // One per period, plus one where the window cuts a period: never one per node. At
        // least half as many: a loaded machine delays passes, it does not skip them.
        assert!(
            total <= longest.ceil() + 1.0 && total >= (shortest / 2.0).floor(),
            "{pass}: {total} passes in {shortest:.2}..{longest:.2} periods (per node \
             {per_node:?}); once per period across the cluster expected, {:.0} if every node \
             ran its own\n{}",
            shortest * c.nodes.len() as f64,
            c.logs()
        );
        for outcome in ["failed", "lease_lost"] {
            assert_eq!(
                c.metric_sum(&all, &passes_series(pass, outcome)),
                0.0,
                "{pass} {outcome}"
            );
        }
    }
    // The lease decides who runs a pass, so over a few seconds the nodes take turns.
    let ran: usize = (0..c.nodes.len())
        .filter(|&i| PASSES.iter().any(|p| succeeded(&c, &[i], p)[0] > 0.0))
        .count();
    assert!(ran >= 2, "only {ran} node ran passes");
}

/// Serves `data` `step` bytes at a time with a pause between: a PATCH body long enough to
/// be in flight when its node dies.
struct SlowBody {
    data: Vec<u8>,
    pos: usize,
}

impl Read for SlowBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.data.len() {
            return Ok(0);
        }
        thread::sleep(Duration::from_millis(20));
        let n = buf.len().min(32 * 1024).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// What a chunked push got acknowledged so far.
#[derive(Default, Clone)]
struct Progress {
    /// The upload's path (`/v2/.../blobs/uploads/<id>...`), valid on every node.
    location: String,
    acked: usize,
    completed: bool,
}

const CHUNK_BYTES: usize = 1024 * 1024;

/// POST, then 1 MiB PATCHes streamed slowly, then PUT `?digest=`, all to `reg`, recording
/// what each acknowledged in `progress`. Stops at the first failure.
fn slow_chunked_push(reg: &TestRegistry, repo: &str, data: &[u8], progress: &Mutex<Progress>) {
    let client = http();
    let Ok(r) = client
        .post(reg.v2(&format!("{repo}/blobs/uploads/")))
        .send()
    else {
        return;
    };
    if r.status().as_u16() != 202 {
        return;
    }
    let mut location = TestRegistry::path_of(&header(&r, "location"));
    progress.lock().unwrap().location = location.clone();
    let mut offset = 0;
    while offset < data.len() {
        let end = (offset + CHUNK_BYTES).min(data.len());
        let body = SlowBody {
            data: data[offset..end].to_vec(),
            pos: 0,
        };
        let sent = client
            .patch(reg.resolve(&location))
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("{}-{}", offset, end - 1))
            .body(reqwest::blocking::Body::sized(body, (end - offset) as u64))
            .send();
        match sent {
            Ok(r) if r.status().as_u16() == 202 => {
                location = TestRegistry::path_of(&header(&r, "location"));
                offset = end;
                let mut p = progress.lock().unwrap();
                p.location = location.clone();
                p.acked = offset;
            }
            _ => return,
        }
    }
    let put = client
        .put(reg.resolve(&with_query(&location, "digest", &sha256_digest(data))))
        .header("content-type", "application/octet-stream")
        .send();
    if put.is_ok_and(|r| r.status().as_u16() == 201) {
        progress.lock().unwrap().completed = true;
    }
}

/// Every blob of the image `repo:v1` (`desc` in `src`) served by `node`, byte for byte.
fn assert_image_on(node: &TestRegistry, repo: &str, src: &OciLayout, desc: &Descriptor) {
    let r = http()
        .get(node.v2(&format!("{repo}/manifests/v1")))
        .header("accept", OCI_MANIFEST)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{repo}:v1 on {}", node.addr());
    assert_eq!(header(&r, "docker-content-digest"), desc.digest);
    assert!(r.bytes().unwrap().as_ref() == src.blob(&desc.digest).as_slice());
    for d in src
        .reachable(&desc.digest)
        .iter()
        .filter(|&d| *d != desc.digest)
    {
        let r = http()
            .get(node.v2(&format!("{repo}/blobs/{d}")))
            .send()
            .unwrap();
        assert_eq!(
            r.status().as_u16(),
            200,
            "{repo} blob {d} on {}",
            node.addr()
        );
        assert!(
            r.bytes().unwrap().as_ref() == src.blob(d).as_slice(),
            "{d} differs"
        );
    }
}

/// Node 0 is killed (SIGKILL) while three skopeo pushes and two chunked uploads go through
/// the balancer and two chunked uploads go straight to it. Afterwards: every push that
/// succeeded is served byte for byte by both survivors; every unfinished upload is
/// continued on a survivor from the offset it reports (never below what was acknowledged)
/// and completes with the right digest; a new push through the balancer succeeds; the
/// periodic passes go on on the survivors within the lease TTL plus a period, and no lease
/// stays with the dead node.
#[test]
fn cluster_node_killed_mid_push_loses_nothing_acknowledged() {
    if !require_clients(&["skopeo", "umoci"]) {
        return;
    }
    let c = Cluster::start(false, &SHORT_PASSES);
    let env = ContainersEnv::new(&c.front);
    let src = OciLayout::init(&env.scratch("src"));
    let images: Vec<Descriptor> = (0..4)
        .map(|i| src.add_random_image(&format!("i{i}"), "amd64", 2, 1024 * 1024))
        .collect();
    let victim_pid = c.nodes[0].pid().expect("spawned");
    let survivors = [1usize, 2];

    let skopeo_repos: Vec<String> = (0..3)
        .map(|i| c.front.repo(&format!("kill-skopeo{i}")))
        .collect();
    // (straight to node 0?, repository, bytes, what was acknowledged)
    type ChunkedPush = (bool, String, Vec<u8>, Mutex<Progress>);
    let chunked: Vec<ChunkedPush> = (0..4)
        .map(|i| {
            let direct = i >= 2;
            let repo = c.front.repo(&format!("kill-chunked{i}"));
            (
                direct,
                repo,
                random_bytes(4 * CHUNK_BYTES + 1000),
                Mutex::default(),
            )
        })
        .collect();

    let (skopeo_ok, killed_at, held_at_kill, resumed) = thread::scope(|s| {
        let skopeo: Vec<_> = skopeo_repos
            .iter()
            .enumerate()
            .map(|(i, repo)| {
                let (env, src) = (&env, &src);
                s.spawn(move || {
                    let mut cmd = env.skopeo();
                    cmd.args([
                        "copy",
                        "--preserve-digests",
                        "--dest-tls-verify=false",
                        &src.oci_ref(&format!("i{i}")),
                        &env.docker_ref(repo, "v1"),
                    ]);
                    let out = run(cmd, CMD_TIMEOUT);
                    if !out.success() {
                        eprintln!("skopeo push {i} failed (allowed):\n{}", out.stderr_str());
                    }
                    out.success()
                })
            })
            .collect();
        for (direct, repo, data, progress) in &chunked {
            let reg = if *direct { &c.nodes[0] } else { &c.front };
            s.spawn(move || slow_chunked_push(reg, repo, data, progress));
        }
        // Kill once every chunked upload has its first MiB acknowledged: pushes are in
        // flight everywhere.
        wait_until(Duration::from_secs(60), "first chunks acknowledged", || {
            chunked
                .iter()
                .all(|(_, _, _, p)| p.lock().unwrap().acked > 0)
        });
        // Better still while node 0 runs a pass (holds its lease): then the survivors
        // must wait for the lease to expire. Passes are short, so this is tried for a
        // while only, and the kill comes either way.
        let held_by_victim = || {
            c.db.psql(&format!(
                "SELECT coalesce(string_agg(name, ','), '') FROM job_leases \
                 WHERE holder LIKE '{victim_pid}-%'"
            ))
            .unwrap()
            .trim()
            .to_string()
        };
        let tried = Instant::now();
        let mut held = held_by_victim();
        while held.is_empty() && tried.elapsed() < Duration::from_millis(300) {
            held = held_by_victim();
        }
        c.nodes[0].kill();
        let killed_at = Instant::now();
        // Meanwhile: how long until each pass has run twice more on the survivors.
        let c = &c;
        let watcher = s.spawn(move || {
            let at_kill: Vec<f64> = PASSES
                .iter()
                .map(|p| succeeded(c, &survivors, p).iter().sum())
                .collect();
            let mut resumed = vec![None; PASSES.len()];
            while resumed.iter().any(Option::is_none) && killed_at.elapsed() < PASSES_RESUME_BOUND {
                for (k, pass) in PASSES.iter().enumerate() {
                    if resumed[k].is_none()
                        && succeeded(c, &survivors, pass).iter().sum::<f64>() >= at_kill[k] + 2.0
                    {
                        resumed[k] = Some(killed_at.elapsed());
                    }
                }
                thread::sleep(Duration::from_millis(50));
            }
            resumed
        });
        let ok: Vec<bool> = skopeo.into_iter().map(|h| h.join().unwrap()).collect();
        let resumed = watcher.join().unwrap();
        (ok, killed_at, held, resumed)
    });
    eprintln!("leases node 0 held when killed: {held_at_kill:?}");
    c.haproxy
        .wait_for_servers(&[false, true, true], Duration::from_secs(10));

    // A push after the crash goes through (the balancer routes around the dead node).
    let after = c.front.repo("kill-after");
    run_ok(env.skopeo().args([
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &src.oci_ref("i3"),
        &env.docker_ref(&after, "v1"),
    ]));

    // Nothing acknowledged is lost.
    let mut acknowledged = 0;
    for (i, repo) in skopeo_repos.iter().enumerate() {
        if skopeo_ok[i] {
            acknowledged += 1;
            for &n in &survivors {
                assert_image_on(&c.nodes[n], repo, &src, &images[i]);
            }
        }
    }
    for &n in &survivors {
        assert_image_on(&c.nodes[n], &after, &src, &images[3]);
    }
    let mut continued = 0;
    for (k, (direct, repo, data, progress)) in chunked.iter().enumerate() {
        let p = progress.lock().unwrap().clone();
        let digest = sha256_digest(data);
        let survivor = &c.nodes[survivors[k % 2]];
        if !p.completed {
            // Continue it on a survivor from where the store says it is.
            continued += 1;
            let status = curl(&[&survivor.resolve(&p.location)]);
            assert_eq!(
                status.status,
                204,
                "status of upload {k} (direct: {direct}) on a survivor: {}\n{}",
                status.body_str(),
                c.logs()
            );
            let have = received(status.header("range").expect("Range"));
            assert!(
                have >= p.acked && have <= data.len(),
                "upload {k}: the store has {have} bytes, {} were acknowledged",
                p.acked
            );
            eprintln!(
                "upload {k} (straight to node 0: {direct}): {} bytes acknowledged, {have} in \
                 the store, continued on a survivor",
                p.acked
            );
            let url = survivor.resolve(&TestRegistry::path_of(
                status.header("location").expect("Location"),
            ));
            finish_upload(survivor, &url, &digest, &data[have..]);
        }
        for &n in &survivors {
            assert_blob(&c.nodes[n], repo, &digest, data);
        }
    }
    eprintln!(
        "killed mid-push: {acknowledged} of 3 skopeo pushes acknowledged, {continued} of 4 \
         chunked uploads continued on a survivor; the balancer's answers by node and status: \
         {:?}",
        c.haproxy.statuses()
    );

    // The passes went on without node 0, and no lease stays with it.
    for (k, pass) in PASSES.iter().enumerate() {
        let took = resumed[k].unwrap_or_else(|| {
            panic!(
                "{pass} did not run twice on the survivors within {PASSES_RESUME_BOUND:?} of the kill\n{}",
                c.logs()
            )
        });
        eprintln!("{pass}: two more passes on the survivors {took:?} after the kill");
    }
    let deadline = killed_at + PASSES_RESUME_BOUND;
    wait_until(
        deadline.saturating_duration_since(Instant::now()),
        "leases of the dead node taken over",
        || {
            c.db.psql(&format!(
                "SELECT count(*) FROM job_leases WHERE holder LIKE '{victim_pid}-%'"
            ))
            .unwrap()
            .trim()
                == "0"
        },
    );
    eprintln!(
        "no lease held by the dead node (checked {:?} after the kill)",
        killed_at.elapsed()
    );
}
