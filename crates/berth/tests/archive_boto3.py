"""The archive storage class of a running berth, driven by boto3 and /v2 requests.

Usage: python3 archive_boto3.py <endpoint url> <admin.credentials> <unique suffix>
Exit status 3 when boto3 is not installed (the Rust driver decides whether that fails).
Any failed check raises (exit status 1) with the reason. Prints {"ok": [...checks]}.

Two images share a layer; archiving one (UpdateImageStorageClass ARCHIVE) removes its
unshared bytes from the blob store (<data dir>/blobs) into the archive tier
(<data dir>/archive) while the shared layer stays; DescribeImages and ListImages show it
only under the ARCHIVED/ANY filters with imageStatus and lastArchivedAt; /v2 pulls of it
answer 404 with a message saying how to restore it and BatchGetImage reports a failure,
while the other image pulls fine; a restore answers ACTIVATING, then the image becomes
ACTIVE (polled) and pulls byte-identical.
"""

import base64
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.request

from berth_e2e import NO_RETRIES, Config, admin_session, expect_client_error  # noqa: E402

endpoint, creds_path, suffix = sys.argv[1:4]
data_dir = os.path.dirname(os.path.abspath(creds_path))
region, session = admin_session(creds_path)
ecr = session.client("ecr", endpoint_url=endpoint, config=NO_RETRIES)
raw = session.client(
    "ecr",
    endpoint_url=endpoint,
    config=Config(retries={"max_attempts": 1, "mode": "standard"}, parameter_validation=False),
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
RESTORE_HINT = "--target-storage-class STANDARD"


def expect_error(code, fn, **kwargs):
    return expect_client_error(code, fn, **kwargs)


def sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def upload_layer(repo, data, part=128 * 1024):
    uid = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    for first in range(0, len(data), part):
        chunk = data[first:first + part]
        ecr.upload_layer_part(repositoryName=repo, uploadId=uid, partFirstByte=first,
                              partLastByte=first + len(chunk) - 1, layerPartBlob=chunk)
    ecr.complete_layer_upload(repositoryName=repo, uploadId=uid, layerDigests=[sha256(data)])


def image_manifest(config, layers):
    return json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": LAYER_TAR, "digest": sha256(l), "size": len(l)} for l in layers],
    }, separators=(",", ":"))


def blob_file(digest):
    hexd = digest.split(":", 1)[1]
    return os.path.join(data_dir, "blobs", "sha256", hexd[:2], hexd)


def archive_file(digest):
    hexd = digest.split(":", 1)[1]
    return os.path.join(data_dir, "archive", "sha256", hexd[:2], hexd + ".zst")


login = base64.b64decode(ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"])
v2_auth = {"Authorization": "Basic " + base64.b64encode(login).decode()}


def v2(method, path, headers=None):
    h = dict(v2_auth)
    h.update(headers or {})
    req = urllib.request.Request(f"{endpoint}{path}", method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def v2_error(path, method="GET"):
    status, body = v2(method, path, {"Accept": OCI_MANIFEST})
    assert status == 404, (path, status, body)
    if method == "HEAD":
        return None
    err = json.loads(body)["errors"][0]
    return err


def describe(repo, status=None, **kw):
    args = {"repositoryName": repo, **kw}
    if status:
        args["filter"] = {"imageStatus": status}
    return ecr.describe_images(**args)["imageDetails"]


checks = []
repo = f"e2e/archive-{suffix}"
ecr.create_repository(repositoryName=repo)
shared = os.urandom(300 * 1024 + 7)
own = os.urandom(200 * 1024)
other = os.urandom(64 * 1024)
config_old = json.dumps({"os": "linux", "seed": suffix + "-old"}).encode()
config_new = json.dumps({"os": "linux", "seed": suffix + "-new"}).encode()
for blob in (shared, own, other, config_old, config_new):
    upload_layer(repo, blob)
m_old = image_manifest(config_old, [shared, own])
m_new = image_manifest(config_new, [shared, other])
d_old = ecr.put_image(repositoryName=repo, imageManifest=m_old, imageTag="old")["image"]["imageId"]["imageDigest"]
d_new = ecr.put_image(repositoryName=repo, imageManifest=m_new, imageTag="new")["image"]["imageId"]["imageDigest"]
assert d_old == sha256(m_old.encode()), d_old
# Pull the old image once, so that the manifest cache holds it as ACTIVE.
assert v2("GET", f"/v2/{repo}/manifests/old", {"Accept": OCI_MANIFEST}) == (200, m_old.encode())
assert all(os.path.exists(blob_file(sha256(b))) for b in (shared, own, config_old))
for d in (d_old, d_new):
    det = describe(repo, imageIds=[{"imageDigest": d}])[0]
    assert det["imageStatus"] == "ACTIVE" and "lastArchivedAt" not in det, det
checks.append("two images sharing a layer pushed, both ACTIVE")

# ---- Archive ----
r = ecr.update_image_storage_class(repositoryName=repo, imageId={"imageTag": "old"},
                                   targetStorageClass="ARCHIVE")
assert r["imageStatus"] == "ARCHIVED", r
assert r["imageId"] == {"imageDigest": d_old, "imageTag": "old"}, r
assert r["repositoryName"] == repo and len(r["registryId"]) == 12, r
# The unshared layer and config left the blob store for the archive tier; the shared
# layer stays (the other image uses it).
assert not os.path.exists(blob_file(sha256(own))), "the unshared layer's standard copy remains"
assert not os.path.exists(blob_file(sha256(config_old)))
assert os.path.exists(blob_file(sha256(shared))), "the shared layer's standard copy is gone"
assert os.path.exists(archive_file(sha256(own))) and os.path.exists(archive_file(sha256(shared)))
# The archive copy is a zstd frame (its magic number).
with open(archive_file(sha256(own)), "rb") as f:
    assert f.read(4) == b"\x28\xb5\x2f\xfd", "the archive copy is not zstd"
checks.append("archiving moves only unshared bytes to the archive tier (zstd)")

# ---- Listing ----
assert [d["imageDigest"] for d in describe(repo)] == [d_new], describe(repo)
archived = describe(repo, "ARCHIVED")
assert [d["imageDigest"] for d in archived] == [d_old], archived
assert archived[0]["imageStatus"] == "ARCHIVED" and "lastArchivedAt" in archived[0], archived
assert archived[0]["imageTags"] == ["old"], archived
assert sorted(d["imageDigest"] for d in describe(repo, "ANY")) == sorted([d_old, d_new])
assert describe(repo, "ACTIVATING") == []
by_id = describe(repo, imageIds=[{"imageTag": "old"}])[0]
assert by_id["imageStatus"] == "ARCHIVED", by_id
ids = ecr.list_images(repositoryName=repo, filter={"imageStatus": "ARCHIVED"})["imageIds"]
assert ids == [{"imageDigest": d_old, "imageTag": "old"}], ids
ids = ecr.list_images(repositoryName=repo)["imageIds"]
assert ids == [{"imageDigest": d_new, "imageTag": "new"}], ids
checks.append("DescribeImages / ListImages show ARCHIVED images under their filters")

# ---- Pulls of the archived image fail clearly; the other image pulls fine ----
for ref in ("old", d_old):
    err = v2_error(f"/v2/{repo}/manifests/{ref}")
    assert err["code"] == "MANIFEST_UNKNOWN" and "archived" in err["message"], err
    assert RESTORE_HINT in err["message"], err
    v2_error(f"/v2/{repo}/manifests/{ref}", "HEAD")
err = v2_error(f"/v2/{repo}/blobs/{sha256(own)}")
assert err["code"] == "BLOB_UNKNOWN" and RESTORE_HINT in err["message"], err
got = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "old"}, {"imageTag": "new"}])
assert [i["imageManifest"] for i in got["images"]] == [m_new], got
assert len(got["failures"]) == 1 and got["failures"][0]["failureCode"] == "ImageNotFound", got
assert "archived" in got["failures"][0]["failureReason"], got
assert v2("GET", f"/v2/{repo}/manifests/new", {"Accept": OCI_MANIFEST}) == (200, m_new.encode())
for blob in (shared, other, config_new):
    assert v2("GET", f"/v2/{repo}/blobs/{sha256(blob)}") == (200, blob)
checks.append("pulls of the archived image fail with the restore hint; the other image pulls")

# ---- Transitions the status does not allow, and bad input ----
for tgt, ref in (("ARCHIVE", "old"), ("STANDARD", "new")):
    resp = expect_error("ImageStorageClassUpdateNotSupportedException", ecr.update_image_storage_class,
                        repositoryName=repo, imageId={"imageTag": ref}, targetStorageClass=tgt)
    assert resp["Error"]["Message"], resp
expect_error("ImageNotFoundException", ecr.update_image_storage_class, repositoryName=repo,
             imageId={"imageTag": "nope"}, targetStorageClass="ARCHIVE")
expect_error("ImageNotFoundException", ecr.update_image_storage_class, repositoryName=repo,
             imageId={"imageDigest": "sha256:" + "0" * 64}, targetStorageClass="ARCHIVE")
expect_error("ImageNotFoundException", ecr.update_image_storage_class, repositoryName=repo,
             imageId={"imageDigest": d_new, "imageTag": "old"}, targetStorageClass="ARCHIVE")
expect_error("RepositoryNotFoundException", ecr.update_image_storage_class,
             repositoryName=f"e2e/missing-{suffix}", imageId={"imageTag": "old"},
             targetStorageClass="ARCHIVE")
expect_error("InvalidParameterException", raw.update_image_storage_class, repositoryName=repo,
             imageId={"imageTag": "old"}, targetStorageClass="GLACIER")
expect_error("InvalidParameterException", raw.update_image_storage_class, repositoryName=repo,
             imageId={}, targetStorageClass="STANDARD")
checks.append("disallowed transitions and bad input get the model's exceptions")

# Tagging the archived image again needs its layers, whose standard copies went to the
# archive: refused as missing layers, and nothing changes (restore it first).
expect_error("LayersNotFoundException", ecr.put_image, repositoryName=repo, imageManifest=m_old,
             imageTag="old-again")
det = describe(repo, imageIds=[{"imageDigest": d_old}])[0]
assert det["imageStatus"] == "ARCHIVED" and det["imageTags"] == ["old"], det
checks.append("pushing the archived image's manifest again is refused until it is restored")

# ---- Restore ----
r = ecr.update_image_storage_class(repositoryName=repo, imageId={"imageDigest": d_old},
                                   targetStorageClass="STANDARD")
assert r["imageStatus"] == "ACTIVATING", r
deadline = time.time() + 60
while True:
    det = describe(repo, imageIds=[{"imageDigest": d_old}])[0]
    if det["imageStatus"] == "ACTIVE":
        break
    assert det["imageStatus"] == "ACTIVATING", det
    assert time.time() < deadline, f"the restore did not finish: {det}"
    time.sleep(0.2)
assert "lastActivatedAt" in det and det["lastActivatedAt"] >= det["lastArchivedAt"], det
assert v2("GET", f"/v2/{repo}/manifests/old", {"Accept": OCI_MANIFEST}) == (200, m_old.encode())
for blob in (shared, own, config_old):
    assert v2("GET", f"/v2/{repo}/blobs/{sha256(blob)}") == (200, blob), "not byte-identical"
    assert os.path.exists(blob_file(sha256(blob)))
got = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "old"}])
assert [i["imageManifest"] for i in got["images"]] == [m_old] and not got["failures"], got
assert sorted(d["imageDigest"] for d in describe(repo)) == sorted([d_old, d_new])
checks.append("restore answers ACTIVATING, then ACTIVE, and the image pulls byte-identical")

# An archived image whose blobs all stay (every one is shared with an ACTIVE image) can be
# tagged again: the push stands and the image stays archived.
m_twin = image_manifest(config_old, [shared])
d_twin = ecr.put_image(repositoryName=repo, imageManifest=m_twin, imageTag="twin")["image"]["imageId"]["imageDigest"]
ecr.update_image_storage_class(repositoryName=repo, imageId={"imageDigest": d_twin}, targetStorageClass="ARCHIVE")
assert os.path.exists(blob_file(sha256(shared))) and os.path.exists(blob_file(sha256(config_old)))
r = ecr.put_image(repositoryName=repo, imageManifest=m_twin, imageTag="twin-again")
assert r["image"]["imageId"] == {"imageDigest": d_twin, "imageTag": "twin-again"}, r
assert r["image"]["imageManifestMediaType"] == OCI_MANIFEST, r
det = describe(repo, imageIds=[{"imageDigest": d_twin}])[0]
assert det["imageStatus"] == "ARCHIVED" and sorted(det["imageTags"]) == ["twin", "twin-again"], det
assert v2_error(f"/v2/{repo}/manifests/twin-again")["code"] == "MANIFEST_UNKNOWN"
checks.append("an archived image whose layers all stay can be tagged again and stays archived")

# Referrers: an archived referrer is listed only under artifactStatus ARCHIVED / ANY.
ref_m = json.loads(image_manifest(config_new, [other]))
ref_m["artifactType"] = "application/vnd.example.sbom"
ref_m["subject"] = {"mediaType": OCI_MANIFEST, "digest": d_new, "size": len(m_new)}
ref_m = json.dumps(ref_m, separators=(",", ":"))
d_ref = ecr.put_image(repositoryName=repo, imageManifest=ref_m)["image"]["imageId"]["imageDigest"]
ecr.update_image_storage_class(repositoryName=repo, imageId={"imageDigest": d_ref}, targetStorageClass="ARCHIVE")
listed = lambda **f: ecr.list_image_referrers(  # noqa: E731
    repositoryName=repo, subjectId={"imageDigest": d_new}, **f)["referrers"]
assert listed() == [], listed()
got = listed(filter={"artifactStatus": "ARCHIVED"})
assert [(x["digest"], x["artifactStatus"]) for x in got] == [(d_ref, "ARCHIVED")], got
assert [x["digest"] for x in listed(filter={"artifactStatus": "ANY"})] == [d_ref]
checks.append("ListImageReferrers reports artifactStatus and filters by it")

ecr.delete_repository(repositoryName=repo, force=True)
print(json.dumps({"ok": checks}))
