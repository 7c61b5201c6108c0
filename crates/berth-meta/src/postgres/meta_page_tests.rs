//! [`PgMetaStore`]'s keyset pages over a large repository and its handling of links that
//! garbage collection marked, against a real server (helpers from `meta_tests`).

use berth_types::Digest;

use super::meta_tests::{count, database, node, repo};
use crate::{BlobLinkStore, RepositorySettings, RepositoryStore};

/// A repository of 10,000 images (every other one tagged, some twice) paged through by
/// `describe_images` for each tag status and by `list_images`: every image once, in
/// byte order of digests (and tags), each page one query, with its tags and sizes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_pages_walk_ten_thousand_images_in_byte_order() {
    use crate::{ImageId, ImageStore, TagStatus};
    let db = database();
    let store = node(&db).await;
    let app = repo("big/app");
    store
        .create_repository(&app, &RepositorySettings::default(), 1)
        .await
        .unwrap();
    // The rows `put_manifest` writes, in one statement each (a test shortcut).
    db.psql(
        "INSERT INTO manifests (repo_id, digest, media_type, size, body, pushed_ms, image_size)
         SELECT r.id, 'sha256:' || encode(sha256(i::text::bytea), 'hex'), 'm', 1, '\\x00', i, 1234
         FROM repositories r, generate_series(0, 9999) i;
         INSERT INTO tags (repo_id, name, digest, updated_ms)
         SELECT r.id, t || i, 'sha256:' || encode(sha256(i::text::bytea), 'hex'), 1
         FROM repositories r, generate_series(0, 9999, 2) i, unnest(ARRAY['A', 'b']) t
         WHERE t = 'A' OR i % 10 = 0;",
    )
    .unwrap();
    for (status, expected) in [
        (TagStatus::Any, 10_000),
        (TagStatus::Tagged, 5_000),
        (TagStatus::Untagged, 5_000),
    ] {
        let (mut seen, mut after) = (Vec::<Digest>::new(), None::<Digest>);
        loop {
            let page = store
                .describe_images(&app, status, after.as_ref(), 300)
                .await
                .unwrap()
                .unwrap();
            let Some(last) = page.last() else { break };
            for image in &page {
                assert_eq!(image.size, 1234);
                let tagged = !image.tags.is_empty();
                assert!(status != TagStatus::Tagged || tagged);
                assert!(status != TagStatus::Untagged || !tagged);
                let mut sorted = image.tags.clone();
                sorted.sort();
                assert_eq!(image.tags, sorted);
            }
            after = Some(last.digest.clone());
            seen.extend(page.into_iter().map(|i| i.digest));
        }
        assert_eq!(seen.len(), expected, "{status:?}");
        let texts: Vec<String> = seen.iter().map(|d| d.to_string()).collect();
        assert!(texts.windows(2).all(|w| w[0] < w[1]), "{status:?}");
    }
    let (mut listed, mut after) = (Vec::<ImageId>::new(), None::<ImageId>);
    loop {
        let page = store
            .list_images(&app, TagStatus::Any, after.as_ref(), 700)
            .await
            .unwrap()
            .unwrap();
        let Some(last) = page.last().cloned() else {
            break;
        };
        listed.extend(page);
        after = Some(last);
    }
    // One entry per tag (5,000 + 1,000) and per untagged image (5,000).
    assert_eq!(listed.len(), 11_000);
    let keys: Vec<(String, String)> = listed
        .iter()
        .map(|i| (i.digest.to_string(), i.tag.clone().unwrap_or_default()))
        .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
    // Upper case sorts before lower case in byte order ('A' < 'b'), as on SQLite.
    let tags_of_first_tagged: Vec<&str> = listed
        .iter()
        .filter(|i| i.digest == Digest::sha256_of(b"0"))
        .filter_map(|i| i.tag.as_deref())
        .collect();
    assert_eq!(tags_of_first_tagged, ["A0", "b0"]);
    assert!(store
        .describe_images(&repo("big/absent"), TagStatus::Any, None, 10)
        .await
        .unwrap()
        .is_none());
}

/// A link garbage collection marked is reported present and its mark cleared (the client
/// seeing it gets a whole grace period), one by one and in a batch; a link collected
/// meanwhile is reported absent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeing_a_marked_link_clears_its_mark() {
    let db = database();
    let store = node(&db).await;
    let app = repo("gc/marks");
    let (one, two, gone) = (
        Digest::sha256_of(b"one"),
        Digest::sha256_of(b"two"),
        Digest::sha256_of(b"gone"),
    );
    for (d, size) in [(&one, 1), (&two, 2), (&gone, 3)] {
        store.commit_blob(&app, d, size, None).await.unwrap();
    }
    db.psql("UPDATE blob_links SET orphaned_ms = 5").unwrap();
    assert_eq!(store.linked_blob(&app, &one).await.unwrap(), Some(1));
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM blob_links WHERE orphaned_ms IS NULL"
        )
        .await,
        1
    );
    db.psql(&format!("DELETE FROM blob_links WHERE digest = '{gone}'"))
        .unwrap();
    let absent = Digest::sha256_of(b"never");
    assert_eq!(
        store
            .linked_blobs(&app, &[two.clone(), absent, gone, one, two])
            .await
            .unwrap(),
        vec![Some(2), None, None, Some(1), Some(2)]
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM blob_links WHERE orphaned_ms IS NOT NULL"
        )
        .await,
        0
    );
    assert_eq!(
        store
            .linked_blobs(&repo("gc/none"), &[Digest::sha256_of(b"one")])
            .await
            .unwrap(),
        vec![None]
    );
}
