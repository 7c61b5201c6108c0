//! Concurrency: many clients racing on the same blob and on the same tag, against the real binary.
//!
//! * 16 clients push the same blob at once (monolithic, POST+PUT and chunked, into two repositories): every push
//!   gets 201, the blob pulls back intact from both, exactly one file holds it under `blobs/`, no upload file is
//!   left behind, and the metadata has one blob row and one link per repository.
//! * 16 clients push different manifests to the same tag at once, while readers keep fetching the tag: every push
//!   gets 201; every read returns a manifest whose bytes match its `Docker-Content-Digest` and that one of the
//!   writers pushed; afterwards the tag list names the tag once, the tag resolves to one of the pushed manifests,
//!   `HEAD`, `GET` by tag and `GET` by digest agree, the tag is what `meta.db` holds, and the same answer comes
//!   back after a restart (so no cache served a value the database does not hold).
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod safety_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use safety_support::*;

const CLIENTS: usize = 16;

#[test]
fn sixteen_clients_pushing_the_same_blob_at_once_all_succeed_and_store_it_once() {
    let started = Instant::now();
    let mut rng = Rng::from_env("same-blob");
    let work = workdir("same-blob");
    let data = work.path().join("data");
    let mut server = Server::start(&data, work.path(), ServerOpts::default());
    let blob = Arc::new(rng.bytes((1 << 20) + 12345));
    let digest = sha256_digest(&blob);
    let repos = ["conc/same-a", "conc/same-b"];

    let barrier = Arc::new(Barrier::new(CLIENTS));
    let handles: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (ep, blob, barrier) = (server.ep(), blob.clone(), barrier.clone());
            let repo = repos[i % 2];
            let mode = match i % 3 {
                0 => BlobMode::Monolithic,
                1 => BlobMode::PostPut,
                _ => BlobMode::Chunked(256 << 10),
            };
            thread::spawn(move || {
                let c = client_builder(Duration::from_secs(60)).build().unwrap();
                barrier.wait();
                (i, mode, push_blob(&c, &ep, repo, &blob, mode))
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let bad: Vec<String> = results
        .iter()
        .filter(|(_, _, p)| *p != Push::Acked)
        .map(|(i, m, p)| format!("client {i} ({m:?}): {p:?}"))
        .collect();
    assert!(
        bad.is_empty(),
        "concurrent pushes of the same blob {digest} failed:\n{}",
        bad.join("\n")
    );

    let c = server.client();
    for repo in repos {
        verify_blob(&c, &server.ep(), repo, &digest, Some(blob.len() as u64))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let (files, problems) = check_blob_files(&data);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        files, 1,
        "exactly one file under blobs/ should hold the blob"
    );
    let leftovers = upload_files(&data);
    assert!(
        leftovers.is_empty(),
        "every upload completed, yet files remain in uploads/: {leftovers:?}"
    );
    assert_eq!(sqlite_count(&data, "SELECT count(*) FROM blobs"), 1);
    assert_eq!(sqlite_count(&data, "SELECT count(*) FROM blob_links"), 2);
    assert_eq!(sqlite_count(&data, "SELECT count(*) FROM uploads"), 0);
    let p = sqlite_check(&data);
    assert!(p.is_empty(), "{p:?}");
    let status = server.terminate(Duration::from_secs(30));
    assert!(status.success(), "berth exited with {status}");
    eprintln!(
        "same blob from {CLIENTS} clients: ok in {:?}",
        started.elapsed()
    );
}

/// One check of what a tag serves: `GET` by tag must return bytes hashing to `Docker-Content-Digest`, and those
/// bytes must be one of `allowed`. Returns the digest served.
fn read_tag(
    c: &reqwest::blocking::Client,
    ep: &Endpoint,
    repo: &str,
    tag: &str,
    allowed: &BTreeMap<String, Vec<u8>>,
) -> Result<String, String> {
    let f = get_manifest(c, ep, repo, tag)?;
    if f.status != 200 {
        return Err(format!(
            "GET {repo}:{tag}: {} {}",
            f.status,
            String::from_utf8_lossy(&f.body)
        ));
    }
    let d = sha256_digest(&f.body);
    if f.digest != d {
        return Err(format!(
            "GET {repo}:{tag}: Docker-Content-Digest {} but the body hashes to {d}",
            f.digest
        ));
    }
    if allowed.get(&d) != Some(&f.body) {
        return Err(format!(
            "GET {repo}:{tag}: served {d}, which no client pushed to this tag"
        ));
    }
    Ok(d)
}

/// The digest `meta.db` holds for a tag (read-only; the server keeps running). The
/// repository is the default account's: rows name it `<account>/<name>`.
fn tag_in_db(data: &std::path::Path, repo: &str, tag: &str) -> Option<String> {
    use rusqlite::OptionalExtension;
    let conn = rusqlite::Connection::open_with_flags(
        data.join("meta.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open meta.db read-only");
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.query_row(
        "SELECT t.digest FROM tags t JOIN repositories r ON r.id = t.repo_id WHERE r.name = ?1 AND t.name = ?2",
        [format!("000000000000/{repo}").as_str(), tag],
        |r| r.get(0),
    )
    .optional()
    .unwrap_or_else(|e| panic!("reading tag {repo}:{tag} from meta.db: {e}"))
}

#[test]
fn sixteen_clients_pushing_the_same_tag_at_once_leave_a_consistent_tag() {
    const ROUNDS: usize = 12;
    const READERS: usize = 6;
    let started = Instant::now();
    let mut rng = Rng::from_env("same-tag");
    let work = workdir("same-tag");
    let data = work.path().join("data");
    let mut server = Server::start(&data, work.path(), ServerOpts::default());
    let c = server.client();
    let repo = "conc/same-tag";

    let layer = rng.bytes(4096);
    let layer_d = sha256_digest(&layer);
    let layers = vec![(layer_d, layer.len())];
    let config = image_config(&layers, "same tag");
    let config_d = sha256_digest(&config);
    for b in [&layer, &config] {
        assert_eq!(
            push_blob(&c, &server.ep(), repo, b, BlobMode::Monolithic),
            Push::Acked
        );
    }

    let mut observed: BTreeMap<String, String> = BTreeMap::new();
    let mut reads_total = 0usize;
    for round in 0..ROUNDS {
        let tag = format!("race-{round}");
        // Manifest 0 goes first, alone, so that readers always find the tag; 1..=16 race.
        let manifests: BTreeMap<String, Vec<u8>> = (0..=CLIENTS)
            .map(|i| {
                let m = image_manifest(
                    (&config_d, config.len()),
                    &layers,
                    &format!("round {round} client {i} {:x}", rng.next_u64()),
                );
                (sha256_digest(&m), m)
            })
            .collect();
        let ordered: Vec<Vec<u8>> = manifests.values().cloned().collect();
        assert_eq!(
            push_manifest(&c, &server.ep(), repo, &tag, &ordered[0]),
            Push::Acked
        );
        let allowed = Arc::new(manifests.clone());
        let done = Arc::new(AtomicBool::new(false));
        let read_errors = Arc::new(Mutex::new(Vec::<String>::new()));
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                let (ep, allowed, done, errs) = (
                    server.ep(),
                    allowed.clone(),
                    done.clone(),
                    read_errors.clone(),
                );
                let tag = tag.clone();
                thread::spawn(move || {
                    let c = client_builder(Duration::from_secs(60)).build().unwrap();
                    let mut n = 0usize;
                    while !done.load(Ordering::SeqCst) {
                        if let Err(e) = read_tag(&c, &ep, repo, &tag, &allowed) {
                            errs.lock().unwrap().push(e);
                        }
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let barrier = Arc::new(Barrier::new(CLIENTS));
        let writers: Vec<_> = ordered[1..]
            .iter()
            .cloned()
            .map(|m| {
                let (ep, barrier, tag) = (server.ep(), barrier.clone(), tag.clone());
                thread::spawn(move || {
                    let c = client_builder(Duration::from_secs(60)).build().unwrap();
                    barrier.wait();
                    (sha256_digest(&m), push_manifest(&c, &ep, repo, &tag, &m))
                })
            })
            .collect();
        let pushed: Vec<(String, Push)> = writers.into_iter().map(|h| h.join().unwrap()).collect();
        done.store(true, Ordering::SeqCst);
        reads_total += readers
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum::<usize>();
        let bad: Vec<String> = pushed
            .iter()
            .filter(|(_, p)| *p != Push::Acked)
            .map(|(d, p)| format!("{d}: {p:?}"))
            .collect();
        assert!(
            bad.is_empty(),
            "round {round}: concurrent pushes to {repo}:{tag} failed:\n{}",
            bad.join("\n")
        );
        let errs = read_errors.lock().unwrap().clone();
        assert!(
            errs.is_empty(),
            "round {round}: reads of {repo}:{tag} during the race were inconsistent:\n{}",
            errs.join("\n")
        );

        // After the race: one tag, resolving the same way by GET, HEAD and digest.
        let (status, tl) = get_json(&c, &server.v2(&format!("{repo}/tags/list"))).unwrap();
        assert_eq!(status, 200);
        let tags = strings(&tl, "tags");
        assert_eq!(
            tags.iter().filter(|t| **t == tag).count(),
            1,
            "tags/list should name {tag} exactly once: {tl}"
        );
        let d = read_tag(&c, &server.ep(), repo, &tag, &allowed).unwrap_or_else(|e| panic!("{e}"));
        let racers: BTreeSet<&String> = pushed.iter().map(|(d, _)| d).collect();
        assert!(
            racers.contains(&d),
            "round {round}: {tag} resolves to {d}, the manifest pushed before the race, not to one of the \
             16 pushed after it"
        );
        let head = c
            .head(server.v2(&format!("{repo}/manifests/{tag}")))
            .header("accept", OCI_MANIFEST)
            .send()
            .unwrap();
        assert_eq!(head.status().as_u16(), 200);
        assert_eq!(header(&head, "docker-content-digest"), d, "HEAD {tag}");
        for (md, bytes) in manifests.iter() {
            let f = get_manifest(&c, &server.ep(), repo, md).unwrap();
            assert_eq!(
                (f.status, &f.body, &f.digest),
                (200, bytes, md),
                "GET {repo}@{md}"
            );
        }
        // What the server serves (possibly from its cache) is what its database holds.
        let in_db = tag_in_db(&data, repo, &tag);
        assert_eq!(
            in_db.as_deref(),
            Some(d.as_str()),
            "round {round}: GET {repo}:{tag} serves {d}, the database says {in_db:?}"
        );
        observed.insert(tag, d);
    }

    // The database holds what the (cached) reads said.
    let status = server.terminate(Duration::from_secs(30));
    assert!(status.success(), "berth exited with {status}");
    server.restart();
    let c = server.client();
    for (tag, d) in &observed {
        let f = get_manifest(&c, &server.ep(), repo, tag).unwrap();
        assert_eq!(
            (f.status, sha256_digest(&f.body), &f.digest),
            (200, d.clone(), d),
            "{tag} after a restart differs from what the running server served"
        );
    }
    let (listed, problems) = verify_listings(&c, &server.ep());
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        listed.get(repo).map(|t| t.len()),
        Some(ROUNDS),
        "{listed:?}"
    );
    let p = sqlite_check(&data);
    assert!(p.is_empty(), "{p:?}");
    eprintln!(
        "same tag: {ROUNDS} rounds of {CLIENTS} concurrent pushes, {reads_total} concurrent reads, ok in {:?}",
        started.elapsed()
    );
}

#[test]
fn sixteen_clients_pushing_different_tags_at_once_are_all_listed() {
    let mut rng = Rng::from_env("many-tags");
    let work = workdir("many-tags");
    let data = work.path().join("data");
    let server = Server::start(&data, work.path(), ServerOpts::default());
    let repo = "conc/many-tags";
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let handles: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (ep, barrier) = (server.ep(), barrier.clone());
            let mut rng = rng.fork();
            thread::spawn(move || {
                let c = client_builder(Duration::from_secs(60)).build().unwrap();
                let size = rng.range(1000, 200_000) as usize;
                let layer = rng.bytes(size);
                let layers = vec![(sha256_digest(&layer), layer.len())];
                let config = image_config(&layers, &format!("client {i}"));
                barrier.wait();
                for b in [&layer, &config] {
                    let p = push_blob(&c, &ep, repo, b, BlobMode::Monolithic);
                    if p != Push::Acked {
                        return Err(format!("client {i}: {p:?}"));
                    }
                }
                let m = image_manifest(
                    (&sha256_digest(&config), config.len()),
                    &layers,
                    &format!("client {i}"),
                );
                match push_manifest(&c, &ep, repo, &format!("t{i:02}"), &m) {
                    Push::Acked => Ok(()),
                    p => Err(format!("client {i}: {p:?}")),
                }
            })
        })
        .collect();
    let errs: Vec<String> = handles
        .into_iter()
        .filter_map(|h| h.join().unwrap().err())
        .collect();
    assert!(errs.is_empty(), "{}", errs.join("\n"));
    let c = server.client();
    let (listed, problems) = verify_listings(&c, &server.ep());
    assert!(problems.is_empty(), "{problems:?}");
    let want: Vec<String> = (0..CLIENTS).map(|i| format!("t{i:02}")).collect();
    assert_eq!(listed.get(repo), Some(&want), "{listed:?}");
}

/// While one client's `PATCH` is stalled mid-body (a client that vanished without closing its connection),
/// `GET` of the upload's status and `DELETE` of the upload still answer at once.
#[test]
fn upload_status_answers_while_another_patch_to_the_upload_is_stalled() {
    use std::io::Write;
    let work = workdir("stalled-patch");
    let data = work.path().join("data");
    let server = Server::start(&data, work.path(), ServerOpts::default());
    let c = server.client();
    let url = start_upload(&c, &server.ep(), "conc/stalled").expect("POST");
    let path = path_of(&url);
    // Announce 1 MiB, send 1000 bytes, then keep the connection open and silent.
    let mut stalled = std::net::TcpStream::connect(&server.addr).unwrap();
    write!(
        stalled,
        "PATCH {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: 1048576\r\nContent-Range: 0-1048575\r\n\r\n",
        server.addr
    )
    .unwrap();
    stalled.write_all(&[0x61; 1000]).unwrap();
    thread::sleep(Duration::from_millis(300));

    let quick = client_builder(Duration::from_secs(5)).build().unwrap();
    let mut problems = Vec::new();
    for method in ["GET", "DELETE"] {
        let t = Instant::now();
        let r = match method {
            "GET" => quick.get(&url).send(),
            _ => quick.delete(&url).send(),
        };
        match r {
            Ok(r) => eprintln!("{method} {path}: {} after {:?}", r.status(), t.elapsed()),
            Err(e) => problems.push(format!(
                "{method} {path} got no answer within {:?} while another PATCH to it is stalled: {e:#}",
                t.elapsed()
            )),
        }
    }
    drop(stalled);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
