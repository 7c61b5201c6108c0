"""Lifecycle policies of a running berth, end to end with boto3.

Usage: python3 lifecycle_boto3.py <endpoint url> <admin.credentials> <unique suffix> <clock file>
Exit status 3 when boto3 is not installed (the Rust driver decides whether that fails).
Any failed check raises (exit status 1) with the reason. Prints {"ok": [...checks],
"facts": {...}}.

The server runs with BERTH_TEST_CLOCK_FILE=<clock file> (the registry clock's testing aid:
the file holds an offset in seconds) and a lifecycle scheduler interval of one second.
Images are pushed "40 days ago" and "3 days ago" by writing the offset before pushing.
Then: a policy is previewed (waiter + paginator, filters) and shows exactly the expected
set; nothing is deleted while only previews exist; the policy is put; the scheduler
executes it; exactly the previewed set is gone, GetLifecyclePolicy shows lastEvaluatedAt,
and every kept image pulls byte-identically (manifest and layers).
"""

import datetime
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.request

from berth_e2e import NO_RETRIES, ClientError, admin_session, expect_client_error  # noqa: E402

endpoint, creds_path, suffix, clock_file = sys.argv[1:5]
region, session = admin_session(creds_path)
ecr = session.client("ecr", endpoint_url=endpoint, config=NO_RETRIES)
now = lambda: datetime.datetime.now(datetime.timezone.utc)  # noqa: E731

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
DAY = 86400


def expect_error(code, fn, **kwargs):
    return expect_client_error(code, fn, **kwargs)


def sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def set_clock(offset_secs):
    with open(clock_file + ".tmp", "w") as f:
        f.write(str(offset_secs))
    os.replace(clock_file + ".tmp", clock_file)


def upload_layer(repo, data):
    uid = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    ecr.upload_layer_part(repositoryName=repo, uploadId=uid, partFirstByte=0,
                          partLastByte=len(data) - 1, layerPartBlob=data)
    ecr.complete_layer_upload(repositoryName=repo, uploadId=uid, layerDigests=[sha256(data)])


def push_image(repo, name, tag=None, size=1000):
    """Pushes a one-layer image whose layer is `size` bytes; returns (digest, manifest, layer)."""
    layer = (name.encode() * (size // len(name) + 1))[:size]
    config = json.dumps({"architecture": "amd64", "os": "linux", "name": name}).encode()
    for blob in (layer, config):
        upload_layer(repo, blob)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": LAYER_TAR, "digest": sha256(layer), "size": len(layer)}],
    }, separators=(",", ":"))
    kwargs = {"imageTag": tag} if tag else {}
    ecr.put_image(repositoryName=repo, imageManifest=manifest, **kwargs)
    return sha256(manifest.encode()), manifest, layer


def fetch(url):
    try:
        with urllib.request.urlopen(urllib.request.Request(url), timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def all_images(repo):
    out = {}
    for page in ecr.get_paginator("describe_images").paginate(repositoryName=repo):
        for d in page["imageDetails"]:
            out[d["imageDigest"]] = d
    return out


checks = []
repo = f"lifecycle/app-{suffix}"
ecr.create_repository(repositoryName=repo)

# ---- Errors before any policy ----
expect_error("LifecyclePolicyNotFoundException", ecr.get_lifecycle_policy, repositoryName=repo)
expect_error("LifecyclePolicyNotFoundException", ecr.delete_lifecycle_policy, repositoryName=repo)
expect_error("LifecyclePolicyNotFoundException", ecr.start_lifecycle_policy_preview, repositoryName=repo)
expect_error("LifecyclePolicyPreviewNotFoundException", ecr.get_lifecycle_policy_preview,
             repositoryName=repo)
expect_error("RepositoryNotFoundException", ecr.get_lifecycle_policy,
             repositoryName=f"lifecycle/missing-{suffix}")
two_untagged = json.dumps({"rules": [
    {"rulePriority": 1, "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan",
                                      "countNumber": 1}, "action": {"type": "expire"}},
    {"rulePriority": 2, "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan",
                                      "countNumber": 5}, "action": {"type": "expire"}},
]})
resp = expect_error("InvalidParameterException", ecr.put_lifecycle_policy, repositoryName=repo,
                    lifecyclePolicyText=two_untagged)
assert "Lifecycle policy validation failure" in resp["Error"]["Message"], resp
expect_error("InvalidParameterException", ecr.start_lifecycle_policy_preview, repositoryName=repo,
             lifecyclePolicyText=two_untagged)
checks.append("lifecycle errors: no policy, no preview, no repository, invalid policy")

# ---- Images with controlled push times ----
pushed = {}  # name -> (digest, manifest, layer)
set_clock(-40 * DAY)
for i in range(3):
    pushed[f"old-untagged-{i}"] = push_image(repo, f"old-untagged-{i}-{suffix}", size=1000 + i)
for i in range(1, 4):
    pushed[f"v{i}"] = push_image(repo, f"v{i}-{suffix}", tag=f"v{i}", size=2000 + i)
pushed["prod-1"] = push_image(repo, f"prod-1-{suffix}", tag="prod-1", size=3000)
pushed["cold-1"] = push_image(repo, f"cold-1-{suffix}", tag="cold-1", size=5000)
# An old untagged image that a (tagged) index references: selected, but kept by the index.
pushed["child"] = push_image(repo, f"child-{suffix}", size=4000)
child_digest, child_manifest, _ = pushed["child"]
index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
    {"mediaType": OCI_MANIFEST, "digest": child_digest, "size": len(child_manifest),
     "platform": {"architecture": "amd64", "os": "linux"}}]}, separators=(",", ":"))
ecr.put_image(repositoryName=repo, imageManifest=index, imageTag="multi")
pushed["multi"] = (sha256(index.encode()), index, None)
set_clock(-3 * DAY)
for i in range(2):
    pushed[f"new-untagged-{i}"] = push_image(repo, f"new-untagged-{i}-{suffix}", size=500 + i)
for i in (4, 5):
    pushed[f"v{i}"] = push_image(repo, f"v{i}-{suffix}", tag=f"v{i}", size=2000 + i)
set_clock(0)
details = all_images(repo)
assert len(details) == len(pushed), (len(details), sorted(pushed))
old_at = details[pushed["v1"][0]]["imagePushedAt"]
assert 39.9 < (now() - old_at).total_seconds() / DAY < 40.1, old_at
new_at = details[pushed["v4"][0]]["imagePushedAt"]
assert 2.9 < (now() - new_at).total_seconds() / DAY < 3.1, new_at
checks.append("images pushed 40 and 3 days ago on the test clock")

policy = json.dumps({"rules": [
    {"rulePriority": 1, "description": "keep production images",
     "selection": {"tagStatus": "tagged", "tagPrefixList": ["prod"], "countType": "imageCountMoreThan",
                   "countNumber": 100}, "action": {"type": "expire"}},
    {"rulePriority": 2, "description": "untagged images older than 14 days",
     "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days",
                   "countNumber": 14}, "action": {"type": "expire"}},
    {"rulePriority": 3, "description": "the two newest release images",
     "selection": {"tagStatus": "tagged", "tagPatternList": ["v*"], "countType": "imageCountMoreThan",
                   "countNumber": 2}, "action": {"type": "expire"}},
    {"rulePriority": 4, "description": "cold images to the archive after 30 days",
     "selection": {"tagStatus": "tagged", "tagPrefixList": ["cold"], "countType": "sinceImagePushed",
                   "countUnit": "days", "countNumber": 30},
     "action": {"type": "transition", "targetStorageClass": "archive"}},
    {"rulePriority": 5, "description": "at most 100 images",
     "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 100},
     "action": {"type": "expire"}},
]})
expected = {pushed[f"old-untagged-{i}"][0]: 2 for i in range(3)}
expected.update({pushed[f"v{i}"][0]: 3 for i in (1, 2, 3)})
cold = pushed["cold-1"][0]
kept = {name: v for name, v in pushed.items() if v[0] not in expected and v[0] != cold}
# Bytes of kept images before anything runs, to compare after.
before = {v[0]: v[1] for v in kept.values()}

# ---- Preview of a policy given with the request (nothing stored yet) ----
started = ecr.start_lifecycle_policy_preview(repositoryName=repo, lifecyclePolicyText=policy)
assert started["status"] == "IN_PROGRESS" and started["lifecyclePolicyText"] == policy, started
assert started["repositoryName"] == repo and started["registryId"].isdigit(), started
try:
    ecr.start_lifecycle_policy_preview(repositoryName=repo, lifecyclePolicyText=policy)
except ClientError as e:  # the first one may still be running
    assert e.response["Error"]["Code"] == "LifecyclePolicyPreviewInProgressException", e
ecr.get_waiter("lifecycle_policy_preview_complete").wait(
    repositoryName=repo, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
results = []
pages = 0
for page in ecr.get_paginator("get_lifecycle_policy_preview").paginate(
        repositoryName=repo, PaginationConfig={"PageSize": 2}):
    pages += 1
    assert page["status"] == "COMPLETE" and page["lifecyclePolicyText"] == policy, page
    assert page["summary"] == {
        "expiringImageTotalCount": len(expected),
        "transitioningImageTotalCounts": [{"targetStorageClass": "ARCHIVE", "imageTotalCount": 1}],
    }, page["summary"]
    results.extend(page["previewResults"])
assert pages == 4, pages
got = {r["imageDigest"]: r["appliedRulePriority"] for r in results}
assert got == dict(expected, **{cold: 4}), (got, expected)
for r in results:
    action = {"type": "TRANSITION", "targetStorageClass": "ARCHIVE"} if r["imageDigest"] == cold \
        else {"type": "EXPIRE"}
    assert r["action"] == action and r["storageClass"] == "STANDARD", r
    assert 39.9 < (now() - r["imagePushedAt"]).total_seconds() / DAY < 40.1, r
by_digest = {v[0]: name for name, v in pushed.items()}
for r in results:
    name = by_digest[r["imageDigest"]]
    assert r["imageTags"] == ([name] if name.startswith(("v", "cold")) else []), r
# Rule order, then oldest first.
assert [r["appliedRulePriority"] for r in results] == [2, 2, 2, 3, 3, 3, 4], results
tagged = ecr.get_lifecycle_policy_preview(repositoryName=repo, filter={"tagStatus": "TAGGED"})
assert {r["imageDigest"] for r in tagged["previewResults"]} == {pushed[f"v{i}"][0] for i in (1, 2, 3)} | {cold}
untagged = ecr.get_lifecycle_policy_preview(repositoryName=repo, filter={"tagStatus": "UNTAGGED"})
assert {r["imageDigest"] for r in untagged["previewResults"]} == {pushed[f"old-untagged-{i}"][0] for i in range(3)}
one = ecr.get_lifecycle_policy_preview(repositoryName=repo, imageIds=[{"imageTag": "v2"}])
assert [r["imageDigest"] for r in one["previewResults"]] == [pushed["v2"][0]], one
checks.append("preview with a request policy: waiter, paginator (3 pages of 2), summary, filters, imageIds")

# A preview changes nothing, and without a stored policy the scheduler (every second) has
# nothing to execute.
time.sleep(2.5)
assert set(all_images(repo)) == {v[0] for v in pushed.values()}
assert all_images(repo)[cold].get("imageStatus", "ACTIVE") == "ACTIVE"
checks.append("nothing deleted or archived by previews")

# ---- The stored policy, executed by the scheduler ----
put = ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=policy)
assert put["lifecyclePolicyText"] == policy and put["repositoryName"] == repo, put
deadline = time.time() + 60
while True:
    got_policy = ecr.get_lifecycle_policy(repositoryName=repo)
    if "lastEvaluatedAt" in got_policy:
        break
    assert time.time() < deadline, "the scheduler never evaluated the policy"
    time.sleep(0.5)
assert got_policy["lifecyclePolicyText"] == policy, got_policy
assert abs((now() - got_policy["lastEvaluatedAt"]).total_seconds()) < 60, got_policy
remaining = all_images(repo)  # ACTIVE images only, as DescribeImages lists by default
assert set(remaining) == set(before), (sorted(remaining), sorted(before))
assert not set(remaining) & set(expected)
archived = ecr.describe_images(repositoryName=repo, filter={"imageStatus": "ARCHIVED"})["imageDetails"]
assert [d["imageDigest"] for d in archived] == [cold], archived
assert archived[0]["imageTags"] == ["cold-1"] and "lastArchivedAt" in archived[0], archived
checks.append("the scheduler expired exactly the previewed set and archived the cold image; lastEvaluatedAt recorded")

# Kept images pull byte-identically: manifests through BatchGetImage, layers through
# GetDownloadUrlForLayer.
ids = [{"imageDigest": d} for d in before]
images = ecr.batch_get_image(repositoryName=repo, imageIds=ids,
                             acceptedMediaTypes=[OCI_MANIFEST, OCI_INDEX])["images"]
assert {i["imageId"]["imageDigest"]: i["imageManifest"] for i in images} == before
for name, (digest, manifest, layer) in kept.items():
    if layer is None:
        continue
    url = ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=sha256(layer))["downloadUrl"]
    status, body = fetch(url)
    assert status == 200 and body == layer, (name, status, len(body))
checks.append("kept images pull byte-identically")

# Expired tags are gone; a second preview of the stored policy finds nothing left to do.
gone = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
assert gone["images"] == [] and gone["failures"][0]["failureCode"] == "ImageNotFound", gone
ecr.start_lifecycle_policy_preview(repositoryName=repo)
ecr.get_waiter("lifecycle_policy_preview_complete").wait(
    repositoryName=repo, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
again = ecr.get_lifecycle_policy_preview(repositoryName=repo)
assert again["previewResults"] == [] and again["summary"]["expiringImageTotalCount"] == 0, again
checks.append("a second preview of the stored policy is empty (execution is idempotent)")

deleted = ecr.delete_lifecycle_policy(repositoryName=repo)
assert deleted["lifecyclePolicyText"] == policy and "lastEvaluatedAt" in deleted, deleted
expect_error("LifecyclePolicyNotFoundException", ecr.get_lifecycle_policy, repositoryName=repo)
checks.append("DeleteLifecyclePolicy returns the policy with lastEvaluatedAt")

print(json.dumps({"ok": checks, "facts": {
    "repository": repo,
    "expired": sorted(expected),
    "archived": [cold],
    "kept": sorted(before),
}}))
