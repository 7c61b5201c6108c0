"""The image and layer half of the ECR API of a running berth, driven by boto3.

Usage: python3 ecr_images_boto3.py <endpoint url> <admin.credentials> <unique suffix>
Exit status 3 when boto3 is not installed (the Rust driver decides whether that fails).
Any failed check raises (exit status 1) with the reason. Prints {"ok": [...checks],
"facts": {...}} (the driver counts the checks and shows the facts).

Every action is exercised through its success and its error paths: a layer pushed with
InitiateLayerUpload / UploadLayerPart / CompleteLayerUpload, an image put with PutImage and
read back byte for byte with BatchGetImage, DescribeImages sizes / tags / push and pull
times, ListImages filters and pages, ListImageReferrers, BatchDeleteImage failures, tag
immutability (all four modes) refused both by PutImage and by a /v2 manifest PUT,
GetDownloadUrlForLayer URLs fetched, and pull time update exclusions.
"""

import base64
import datetime
import hashlib
import json
import os
import sys
import urllib.error
import urllib.request
import uuid

from berth_e2e import NO_RETRIES, ClientError, Config, admin_session, boto3, expect_client_error  # noqa: E402

endpoint, creds_path, suffix = sys.argv[1:4]
region, session = admin_session(creds_path)
ecr = session.client("ecr", endpoint_url=endpoint, config=NO_RETRIES)
# The same client without botocore's own parameter checks, to reach the server's.
raw = session.client(
    "ecr",
    endpoint_url=endpoint,
    config=Config(retries={"max_attempts": 1, "mode": "standard"}, parameter_validation=False),
)
host = endpoint.split("://", 1)[1]
now = lambda: datetime.datetime.now(datetime.timezone.utc)  # noqa: E731

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


def expect_error(code, fn, **kwargs):
    return expect_client_error(code, fn, **kwargs)


def sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def upload_layer(repo, data, part=64 * 1024):
    """Pushes `data` through the layer-upload actions in parts of `part` bytes."""
    up = ecr.initiate_layer_upload(repositoryName=repo)
    uid = up["uploadId"]
    for first in range(0, len(data), part):
        chunk = data[first:first + part]
        r = ecr.upload_layer_part(
            repositoryName=repo, uploadId=uid, partFirstByte=first,
            partLastByte=first + len(chunk) - 1, layerPartBlob=chunk,
        )
        assert r["lastByteReceived"] == first + len(chunk) - 1, r
    r = ecr.complete_layer_upload(repositoryName=repo, uploadId=uid, layerDigests=[sha256(data)])
    assert r["layerDigest"] == sha256(data), r
    return sha256(data)


def image_manifest(config, layers, media_type=True, **extra):
    m = {"schemaVersion": 2}
    if media_type:
        m["mediaType"] = OCI_MANIFEST
    m["config"] = {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)}
    m["layers"] = [{"mediaType": LAYER_TAR, "digest": sha256(l), "size": len(l)} for l in layers]
    m.update(extra)
    return json.dumps(m, separators=(",", ":"))


login = base64.b64decode(ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"])
v2_auth = {"Authorization": "Basic " + base64.b64encode(login).decode()}


def v2(method, path, body=None, headers=None, auth=True):
    """A /v2 request with the ECR login token; returns (status, headers, body bytes)."""
    h = dict(v2_auth if auth else {})
    h.update(headers or {})
    req = urllib.request.Request(f"{endpoint}{path}", data=body, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def fetch(url):
    try:
        with urllib.request.urlopen(urllib.request.Request(url), timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


checks = []
facts = {}
repo = f"e2e/img-{suffix}"
missing = f"e2e/missing-{suffix}"

# A new account's ROOT creation template creates repositories on push; without it, pushes
# to a missing repository fail as ECR's do, which is what this test checks.
try:
    ecr.delete_repository_creation_template(prefix="ROOT")
except ClientError as e:
    assert e.response["Error"]["Code"] == "TemplateNotFoundException", e

# ---- InitiateLayerUpload / UploadLayerPart / CompleteLayerUpload ----
expect_error("RepositoryNotFoundException", ecr.initiate_layer_upload, repositoryName=missing)
ecr.create_repository(repositoryName=repo)
layer1 = os.urandom(200 * 1024 + 17)
layer2 = os.urandom(50 * 1024)
config1 = json.dumps({"architecture": "amd64", "os": "linux", "seed": suffix + "1"}).encode()
config2 = json.dumps({"architecture": "arm64", "os": "linux", "seed": suffix + "2"}).encode()

up = ecr.initiate_layer_upload(repositoryName=repo)
uid = up["uploadId"]
assert str(uuid.UUID(uid)) == uid.lower(), up
assert up["partSize"] > 0, up
first = layer1[:100_000]
r = ecr.upload_layer_part(repositoryName=repo, uploadId=uid, partFirstByte=0,
                          partLastByte=len(first) - 1, layerPartBlob=first)
assert r["lastByteReceived"] == 99_999 and r["uploadId"] == uid and r["repositoryName"] == repo, r
# A gap, an overlap and bounds that do not match the bytes: InvalidLayerPartException
# naming the last valid byte; nothing is written.
for fb, lb, blob in [(100_005, 100_014, layer1[:10]), (50_000, 50_009, layer1[:10]),
                     (100_000, 100_020, layer1[100_000:100_010])]:
    resp = expect_error("InvalidLayerPartException", ecr.upload_layer_part, repositoryName=repo,
                        uploadId=uid, partFirstByte=fb, partLastByte=lb, layerPartBlob=blob)
    assert resp.get("lastValidByteReceived") == 99_999, resp
    assert resp.get("uploadId") == uid, resp
rest = layer1[100_000:]
r = ecr.upload_layer_part(repositoryName=repo, uploadId=uid, partFirstByte=100_000,
                          partLastByte=len(layer1) - 1, layerPartBlob=rest)
assert r["lastByteReceived"] == len(layer1) - 1, r
expect_error("UploadNotFoundException", ecr.upload_layer_part, repositoryName=repo,
             uploadId=str(uuid.uuid4()), partFirstByte=0, partLastByte=0, layerPartBlob=b"x")
expect_error("InvalidParameterException", raw.upload_layer_part, repositoryName=repo,
             uploadId="not-a-uuid", partFirstByte=0, partLastByte=0, layerPartBlob=b"x")
expect_error("InvalidParameterException", raw.complete_layer_upload, repositoryName=repo,
             uploadId=uid, layerDigests=["sha256:not-hex"])
done = ecr.complete_layer_upload(repositoryName=repo, uploadId=uid, layerDigests=[sha256(layer1)])
assert done["layerDigest"] == sha256(layer1) and done["uploadId"] == uid, done
expect_error("UploadNotFoundException", ecr.complete_layer_upload, repositoryName=repo,
             uploadId=uid, layerDigests=[sha256(layer1)])
# A digest that does not match the bytes: InvalidLayerException, and the upload is gone.
bad = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
ecr.upload_layer_part(repositoryName=repo, uploadId=bad, partFirstByte=0, partLastByte=2, layerPartBlob=b"abc")
expect_error("InvalidLayerException", ecr.complete_layer_upload, repositoryName=repo,
             uploadId=bad, layerDigests=[sha256(b"abd")])
expect_error("UploadNotFoundException", ecr.complete_layer_upload, repositoryName=repo,
             uploadId=bad, layerDigests=[sha256(b"abc")])
# No parts at all: EmptyUploadException.
empty = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
expect_error("EmptyUploadException", ecr.complete_layer_upload, repositoryName=repo,
             uploadId=empty, layerDigests=[sha256(b"")])
# The same layer again: LayerAlreadyExistsException.
again = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
ecr.upload_layer_part(repositoryName=repo, uploadId=again, partFirstByte=0,
                      partLastByte=len(layer1) - 1, layerPartBlob=layer1)
expect_error("LayerAlreadyExistsException", ecr.complete_layer_upload, repositoryName=repo,
             uploadId=again, layerDigests=[sha256(layer1)])
for blob in (layer2, config1, config2, b"{}"):
    upload_layer(repo, blob)
checks.append("layer upload (initiate, parts, complete) with its errors")

# ---- BatchCheckLayerAvailability ----
absent = sha256(b"never uploaded " + suffix.encode())
r = ecr.batch_check_layer_availability(
    repositoryName=repo, layerDigests=[sha256(layer1), sha256(config1), absent, "", "bogus"])
by = {l["layerDigest"]: l for l in r["layers"]}
assert by[sha256(layer1)]["layerAvailability"] == "AVAILABLE", r
assert by[sha256(layer1)]["layerSize"] == len(layer1), r
assert by[sha256(config1)]["layerSize"] == len(config1), r
assert by[absent]["layerAvailability"] == "UNAVAILABLE", r
codes = {f["layerDigest"]: f["failureCode"] for f in r["failures"]}
assert codes == {"": "MissingLayerDigest", "bogus": "InvalidLayerDigest"}, r
expect_error("RepositoryNotFoundException", ecr.batch_check_layer_availability,
             repositoryName=missing, layerDigests=[absent])
expect_error("InvalidParameterException", raw.batch_check_layer_availability,
             repositoryName=repo, layerDigests=[])
checks.append("batch_check_layer_availability")

# ---- GetDownloadUrlForLayer before any image references the layer ----
expect_error("LayerInaccessibleException", ecr.get_download_url_for_layer,
             repositoryName=repo, layerDigest=sha256(layer1))
expect_error("LayersNotFoundException", ecr.get_download_url_for_layer,
             repositoryName=repo, layerDigest=absent)

# ---- PutImage ----
m1 = image_manifest(config1, [layer1])
m2 = image_manifest(config2, [layer1, layer2])
d1, d2 = sha256(m1.encode()), sha256(m2.encode())
put_at = now()
img = ecr.put_image(repositoryName=repo, imageManifest=m1, imageTag="v1")["image"]
assert img["imageId"] == {"imageDigest": d1, "imageTag": "v1"}, img
assert img["imageManifest"] == m1 and img["imageManifestMediaType"] == OCI_MANIFEST, img
assert img["registryId"].isdigit() and img["repositoryName"] == repo, img
account = img["registryId"]
expect_error("ImageAlreadyExistsException", ecr.put_image, repositoryName=repo, imageManifest=m1, imageTag="v1")
ecr.put_image(repositoryName=repo, imageManifest=m1, imageTag="latest")
ecr.put_image(repositoryName=repo, imageManifest=m2, imageTag="v2", imageDigest=d2)
expect_error("ImageDigestDoesNotMatchException", ecr.put_image, repositoryName=repo,
             imageManifest=m2, imageTag="v2b", imageDigest=d1)
expect_error("LayersNotFoundException", ecr.put_image, repositoryName=repo,
             imageManifest=image_manifest(config1, [b"not uploaded" + suffix.encode()]), imageTag="nope")
expect_error("RepositoryNotFoundException", ecr.put_image, repositoryName=missing, imageManifest=m1)
expect_error("InvalidParameterException", ecr.put_image, repositoryName=repo,
             imageManifest=image_manifest(config2, [layer2], media_type=False))
expect_error("InvalidParameterException", ecr.put_image, repositoryName=repo,
             imageManifest="this is not a manifest")
expect_error("InvalidParameterException", raw.put_image, repositoryName=repo, imageManifest=m1, imageTag="bad tag")
# No mediaType in the manifest: imageManifestMediaType gives it.
m3 = image_manifest(config2, [layer2], media_type=False)
d3 = sha256(m3.encode())
img3 = ecr.put_image(repositoryName=repo, imageManifest=m3, imageManifestMediaType=OCI_MANIFEST)["image"]
assert img3["imageId"] == {"imageDigest": d3} and img3["imageManifestMediaType"] == OCI_MANIFEST, img3
index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
    {"mediaType": OCI_MANIFEST, "digest": d1, "size": len(m1), "platform": {"architecture": "amd64", "os": "linux"}},
    {"mediaType": OCI_MANIFEST, "digest": d2, "size": len(m2), "platform": {"architecture": "arm64", "os": "linux"}},
]})
di = sha256(index.encode())
expect_error("ReferencedImagesNotFoundException", ecr.put_image, repositoryName=repo, imageTag="broken",
             imageManifest=json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
                 {"mediaType": OCI_MANIFEST, "digest": absent, "size": 10}]}))
ecr.put_image(repositoryName=repo, imageManifest=index, imageTag="multi")
# A referrer of v1 (an artifact with a subject).
sig = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sig",
                  "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(b"{}"), "size": 2},
                  "layers": [{"mediaType": LAYER_TAR, "digest": sha256(layer2), "size": len(layer2)}],
                  "subject": {"mediaType": OCI_MANIFEST, "digest": d1, "size": len(m1)},
                  "annotations": {"org.example.signer": "e2e"}})
dsig = sha256(sig.encode())
ecr.put_image(repositoryName=repo, imageManifest=sig)
checks.append("put_image with its errors")

# ---- BatchGetImage ----
r = ecr.batch_get_image(repositoryName=repo, imageIds=[
    {"imageTag": "v1"}, {"imageDigest": d2}, {"imageTag": "nope"}, {"imageDigest": "sha256:zz"}, {},
    {"imageTag": "v1", "imageDigest": d2}])
got = {i["imageId"].get("imageTag") or i["imageId"]["imageDigest"]: i for i in r["images"]}
assert got["v1"]["imageManifest"] == m1 and got["v1"]["imageId"] == {"imageDigest": d1, "imageTag": "v1"}, r
assert got[d2]["imageManifest"] == m2 and got[d2]["imageManifestMediaType"] == OCI_MANIFEST, r
assert len(r["images"]) == 2, r
fails = sorted(f["failureCode"] for f in r["failures"])
assert fails == ["ImageNotFound", "ImageTagDoesNotMatchDigest", "InvalidImageDigest", "MissingDigestAndTag"], r
r = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}], acceptedMediaTypes=[DOCKER_MANIFEST])
assert r["images"] == [] and r["failures"][0]["failureCode"] == "ImageNotFound", r
r = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "multi"}], acceptedMediaTypes=[OCI_INDEX, OCI_MANIFEST])
assert r["images"][0]["imageManifest"] == index and r["images"][0]["imageManifestMediaType"] == OCI_INDEX, r
expect_error("RepositoryNotFoundException", ecr.batch_get_image, repositoryName=missing, imageIds=[{"imageTag": "v1"}])
expect_error("InvalidParameterException", raw.batch_get_image, repositoryName=repo, imageIds=[])
checks.append("batch_get_image (bytes equal, failures, acceptedMediaTypes)")

# ---- GetDownloadUrlForLayer ----
u = ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=sha256(layer1))
assert u["layerDigest"] == sha256(layer1), u
prefix = f"{endpoint}/v2/{repo}/blobs/{sha256(layer1)}?X-Berth-Download="
assert u["downloadUrl"].startswith(prefix), (u, prefix)
grant = u["downloadUrl"][len(prefix):]
expiry, mac = grant.split(".", 1)
assert 3500 < int(expiry) - now().timestamp() <= 3600 + 5, grant
status, body = fetch(u["downloadUrl"])
assert (status, hashlib.sha256(body).hexdigest()) == (200, sha256(layer1)[7:]), (status, len(body))
# /v2 requires credentials; the grant stands in for them for that blob only. Without it,
# with an altered one, or on another blob: refused.
assert v2("GET", "/v2/", auth=False)[0] == 401
plain = fetch(u["downloadUrl"].split("?", 1)[0])[0]
tampered = fetch(prefix + expiry + "." + ("A" if mac[0] != "A" else "B") + mac[1:])[0]
other_blob = fetch(f"{endpoint}/v2/{repo}/blobs/{sha256(layer2)}?X-Berth-Download={grant}")[0]
assert plain in (401, 403) and tampered in (401, 403) and other_blob in (401, 403), (plain, tampered, other_blob)
facts["refused_without_grant"] = [plain, tampered, other_blob]
expect_error("LayersNotFoundException", ecr.get_download_url_for_layer, repositoryName=repo, layerDigest=absent)
expect_error("InvalidParameterException", raw.get_download_url_for_layer, repositoryName=repo, layerDigest="nope")
expect_error("RepositoryNotFoundException", ecr.get_download_url_for_layer, repositoryName=missing,
             layerDigest=sha256(layer1))
checks.append("get_download_url_for_layer (URL fetched)")

# ---- DescribeImages ----
details = [d for p in ecr.get_paginator("describe_images").paginate(repositoryName=repo) for d in p["imageDetails"]]
det = {d["imageDigest"]: d for d in details}
assert set(det) == {d1, d2, d3, di, dsig}, det.keys()
assert det[d1]["imageSizeInBytes"] == len(layer1), det[d1]
assert det[d2]["imageSizeInBytes"] == len(layer1) + len(layer2), det[d2]
assert det[di]["imageSizeInBytes"] == len(layer1) + len(layer2), "an index is its largest child"
assert sorted(det[d1]["imageTags"]) == ["latest", "v1"], det[d1]
assert "imageTags" not in det[d3], det[d3]
assert det[d1]["imageManifestMediaType"] == OCI_MANIFEST and det[di]["imageManifestMediaType"] == OCI_INDEX, det
assert det[d1]["artifactMediaType"] == OCI_CONFIG, det[d1]
assert det[dsig]["artifactMediaType"] == "application/vnd.example.sig", det[dsig]
assert det[dsig]["subjectManifestDigest"] == d1, det[dsig]
assert det[d1]["registryId"] == account and det[d1]["repositoryName"] == repo, det[d1]
for d in details:
    assert abs((d["imagePushedAt"] - put_at).total_seconds()) < 120, d
# Pulls by BatchGetImage are recorded (with one-second granularity); untouched images have none.
for d in (d1, d2, di):
    pulled = det[d]["lastRecordedPullTime"]
    assert abs((pulled - now()).total_seconds()) < 120, det[d]
assert "lastRecordedPullTime" not in det[d3], det[d3]
tagged = ecr.describe_images(repositoryName=repo, filter={"tagStatus": "TAGGED"})["imageDetails"]
assert {d["imageDigest"] for d in tagged} == {d1, d2, di}, tagged
untagged = ecr.describe_images(repositoryName=repo, filter={"tagStatus": "UNTAGGED"})["imageDetails"]
assert {d["imageDigest"] for d in untagged} == {d3, dsig}, untagged
pages = list(ecr.get_paginator("describe_images").paginate(repositoryName=repo, PaginationConfig={"PageSize": 2}))
assert len(pages) == 3 and sum(len(p["imageDetails"]) for p in pages) == 5, pages
one = ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "v2"}, {"imageDigest": d1}])["imageDetails"]
assert [d["imageDigest"] for d in one] == [d2, d1], one
expect_error("ImageNotFoundException", ecr.describe_images, repositoryName=repo, imageIds=[{"imageTag": "nope"}])
expect_error("ImageNotFoundException", ecr.describe_images, repositoryName=repo, imageIds=[{"imageDigest": absent}])
expect_error("InvalidParameterException", ecr.describe_images, repositoryName=repo,
             imageIds=[{"imageTag": "v1"}], maxResults=5)
expect_error("InvalidParameterException", raw.describe_images, repositoryName=repo, maxResults=0)
expect_error("InvalidParameterException", raw.describe_images, repositoryName=repo, filter={"tagStatus": "SOME"})
expect_error("InvalidParameterException", ecr.describe_images, repositoryName=repo, nextToken="garbage")
expect_error("RepositoryNotFoundException", ecr.describe_images, repositoryName=missing)
checks.append("describe_images (sizes, tags, push and pull times, filters, pages)")

# ---- ListImages ----
all_ids = [i for p in ecr.get_paginator("list_images").paginate(repositoryName=repo,
           PaginationConfig={"PageSize": 2}) for i in p["imageIds"]]
expected = sorted([(d1, "latest"), (d1, "v1"), (d2, "v2"), (di, "multi"), (d3, None), (dsig, None)],
                  key=lambda x: (x[0], x[1] or ""))
assert [(i["imageDigest"], i.get("imageTag")) for i in all_ids] == expected, all_ids
first = ecr.list_images(repositoryName=repo, maxResults=2)
assert len(first["imageIds"]) == 2 and "nextToken" in first, first
tagged = ecr.list_images(repositoryName=repo, filter={"tagStatus": "TAGGED"})["imageIds"]
assert sorted(i["imageTag"] for i in tagged) == ["latest", "multi", "v1", "v2"], tagged
untagged = ecr.list_images(repositoryName=repo, filter={"tagStatus": "UNTAGGED"})["imageIds"]
assert sorted(i["imageDigest"] for i in untagged) == sorted([d3, dsig]) and all("imageTag" not in i for i in untagged), untagged
expect_error("InvalidParameterException", raw.list_images, repositoryName=repo, maxResults=1001)
expect_error("InvalidParameterException", ecr.list_images, repositoryName=repo, nextToken="garbage")
expect_error("RepositoryNotFoundException", ecr.list_images, repositoryName=missing)
checks.append("list_images (tag filter, pagination)")

# ---- ListImageReferrers ----
refs = ecr.list_image_referrers(repositoryName=repo, subjectId={"imageDigest": d1})["referrers"]
assert len(refs) == 1, refs
assert refs[0]["digest"] == dsig and refs[0]["artifactType"] == "application/vnd.example.sig", refs
assert refs[0]["size"] == len(sig) and refs[0]["mediaType"] == OCI_MANIFEST, refs
assert refs[0]["annotations"] == {"org.example.signer": "e2e"}, refs
none = ecr.list_image_referrers(repositoryName=repo, subjectId={"imageDigest": d1},
                                filter={"artifactTypes": ["application/other"]})["referrers"]
assert none == [], none
assert ecr.list_image_referrers(repositoryName=repo, subjectId={"imageDigest": d2})["referrers"] == []
expect_error("InvalidParameterException", raw.list_image_referrers, repositoryName=repo,
             subjectId={"imageDigest": "nope"})
expect_error("InvalidParameterException", raw.list_image_referrers, repositoryName=repo,
             subjectId={"imageDigest": d1}, maxResults=51)
expect_error("RepositoryNotFoundException", ecr.list_image_referrers, repositoryName=missing,
             subjectId={"imageDigest": d1})
checks.append("list_image_referrers")

# ---- BatchDeleteImage ----
r = ecr.batch_delete_image(repositoryName=repo, imageIds=[
    {"imageDigest": d1}, {"imageTag": "nope"}, {}, {"imageDigest": "sha256:zz"}, {"imageTag": "v2", "imageDigest": d1}])
assert r["imageIds"] == [], r
codes = sorted(f["failureCode"] for f in r["failures"])
assert codes == ["ImageNotFound", "ImageReferencedByManifestList", "ImageTagDoesNotMatchDigest",
                 "InvalidImageDigest", "MissingDigestAndTag"], r
ref = [f for f in r["failures"] if f["failureCode"] == "ImageReferencedByManifestList"][0]
assert di in ref["failureReason"] and ref["imageId"] == {"imageDigest": d1}, ref
# The index's last tag takes the index; then its children can go.
r = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "multi"}])
assert r["imageIds"] == [{"imageDigest": di, "imageTag": "multi"}] and r["failures"] == [], r
r = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "latest"}, {"imageDigest": d3}])
assert sorted(map(json.dumps, r["imageIds"])) == sorted(map(json.dumps, [
    {"imageDigest": d1, "imageTag": "latest"}, {"imageDigest": d3}])), r
left = {(i["imageDigest"], i.get("imageTag")) for i in ecr.list_images(repositoryName=repo)["imageIds"]}
assert left == {(d1, "v1"), (d2, "v2"), (dsig, None)}, left
expect_error("RepositoryNotFoundException", ecr.batch_delete_image, repositoryName=missing,
             imageIds=[{"imageTag": "v1"}])
expect_error("InvalidParameterException", raw.batch_delete_image, repositoryName=repo, imageIds=[])
checks.append("batch_delete_image (per-item failures)")

# ---- Tag immutability: PutImage and a /v2 manifest PUT ----
imm = f"e2e/imm-{suffix}"
r = ecr.create_repository(repositoryName=imm, imageTagMutability="IMMUTABLE")["repository"]
assert r["imageTagMutability"] == "IMMUTABLE" and "imageTagMutabilityExclusionFilters" not in r, r
for blob in (layer1, layer2, config1, config2):
    upload_layer(imm, blob, part=128 * 1024)
ecr.put_image(repositoryName=imm, imageManifest=m1, imageTag="stable")
msg = expect_error("ImageTagAlreadyExistsException", ecr.put_image, repositoryName=imm,
                   imageManifest=m2, imageTag="stable")["Error"]["Message"]
assert msg == (f"The image tag 'stable' already exists in the '{imm}' repository and cannot be "
               "overwritten because the repository is immutable."), msg
expect_error("ImageAlreadyExistsException", ecr.put_image, repositoryName=imm, imageManifest=m1, imageTag="stable")
status, _, body = v2("PUT", f"/v2/{imm}/manifests/stable", m2.encode(), {"Content-Type": OCI_MANIFEST})
err = json.loads(body)["errors"][0]
assert status == 400 and err["code"] == "MANIFEST_INVALID", (status, body)
assert "cannot be overwritten because the repository is immutable" in err["message"], err
# The same image to the same tag again is accepted, as ECR does.
status, headers, _ = v2("PUT", f"/v2/{imm}/manifests/stable", m1.encode(), {"Content-Type": OCI_MANIFEST})
assert status == 201 and headers["Docker-Content-Digest"] == d1, status
# A new tag is not a move.
status, _, _ = v2("PUT", f"/v2/{imm}/manifests/other", m2.encode(), {"Content-Type": OCI_MANIFEST})
assert status == 201, status
status, headers, _ = v2("GET", f"/v2/{imm}/manifests/stable", headers={"Accept": OCI_MANIFEST})
assert status == 200 and headers["Docker-Content-Digest"] == d1, status
# A /v2 manifest GET is a pull too (the /v2 gate records it).
pulled = ecr.describe_images(repositoryName=imm, imageIds=[{"imageDigest": d1}])["imageDetails"][0]
assert abs((pulled["lastRecordedPullTime"] - now()).total_seconds()) < 120, pulled
checks.append("IMMUTABLE refuses a re-tag (PutImage and /v2)")

# IMMUTABLE_WITH_EXCLUSION: tags matching a filter move, the others do not.
filters = [{"filterType": "WILDCARD", "filter": "latest"}, {"filterType": "WILDCARD", "filter": "dev-*"}]
r = ecr.put_image_tag_mutability(repositoryName=imm, imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
                                 imageTagMutabilityExclusionFilters=filters)
assert r["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION" and r["imageTagMutabilityExclusionFilters"] == filters, r
assert r["registryId"] == account and r["repositoryName"] == imm, r
d = ecr.describe_repositories(repositoryNames=[imm])["repositories"][0]
assert d["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION" and d["imageTagMutabilityExclusionFilters"] == filters, d
for t in ("latest", "dev-42"):
    ecr.put_image(repositoryName=imm, imageManifest=m1, imageTag=t)
    ecr.put_image(repositoryName=imm, imageManifest=m2, imageTag=t)
    status, _, _ = v2("PUT", f"/v2/{imm}/manifests/{t}", m1.encode(), {"Content-Type": OCI_MANIFEST})
    assert status == 201, (t, status)
expect_error("ImageTagAlreadyExistsException", ecr.put_image, repositoryName=imm, imageManifest=m2, imageTag="stable")
assert v2("PUT", f"/v2/{imm}/manifests/stable", m2.encode(), {"Content-Type": OCI_MANIFEST})[0] == 400
# MUTABLE_WITH_EXCLUSION: only tags matching a filter are fixed.
ecr.put_image_tag_mutability(repositoryName=imm, imageTagMutability="MUTABLE_WITH_EXCLUSION",
                             imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "stab*"}])
expect_error("ImageTagAlreadyExistsException", ecr.put_image, repositoryName=imm, imageManifest=m2, imageTag="stable")
ecr.put_image(repositoryName=imm, imageManifest=m2, imageTag="latest")
assert v2("PUT", f"/v2/{imm}/manifests/other", m1.encode(), {"Content-Type": OCI_MANIFEST})[0] == 201
# MUTABLE: anything moves.
r = ecr.put_image_tag_mutability(repositoryName=imm, imageTagMutability="MUTABLE")
assert r["imageTagMutability"] == "MUTABLE" and "imageTagMutabilityExclusionFilters" not in r, r
ecr.put_image(repositoryName=imm, imageManifest=m2, imageTag="stable")
# Errors of the model.
expect_error("InvalidParameterException", ecr.put_image_tag_mutability, repositoryName=imm,
             imageTagMutability="IMMUTABLE", imageTagMutabilityExclusionFilters=filters)
expect_error("InvalidParameterException", ecr.put_image_tag_mutability, repositoryName=imm,
             imageTagMutability="MUTABLE_WITH_EXCLUSION")
expect_error("InvalidParameterException", raw.put_image_tag_mutability, repositoryName=imm,
             imageTagMutability="SOMETIMES")
expect_error("InvalidParameterException", raw.put_image_tag_mutability, repositoryName=imm,
             imageTagMutability="MUTABLE_WITH_EXCLUSION",
             imageTagMutabilityExclusionFilters=[{"filterType": "REGEX", "filter": "x"}])
expect_error("InvalidParameterException", raw.put_image_tag_mutability, repositoryName=imm,
             imageTagMutability="MUTABLE_WITH_EXCLUSION",
             imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "a/b"}])
expect_error("InvalidParameterException", raw.put_image_tag_mutability, repositoryName=imm,
             imageTagMutability="MUTABLE_WITH_EXCLUSION",
             imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": f"t{i}"} for i in range(6)])
expect_error("RepositoryNotFoundException", ecr.put_image_tag_mutability, repositoryName=missing,
             imageTagMutability="IMMUTABLE")
# CreateRepository takes the same settings.
excl = f"e2e/excl-{suffix}"
r = ecr.create_repository(repositoryName=excl, imageTagMutability="MUTABLE_WITH_EXCLUSION",
                          imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "v*"}])["repository"]
assert r["imageTagMutabilityExclusionFilters"] == [{"filterType": "WILDCARD", "filter": "v*"}], r
expect_error("InvalidParameterException", ecr.create_repository, repositoryName=f"e2e/excl2-{suffix}",
             imageTagMutability="IMMUTABLE_WITH_EXCLUSION")
checks.append("put_image_tag_mutability (four modes, exclusion filters, errors)")

# ---- Pull time update exclusions ----
arns = [f"arn:aws:iam::{account}:role/scanner-{suffix}", f"arn:aws:iam::{account}:user/ci-{suffix}"]
for a in arns:
    r = ecr.register_pull_time_update_exclusion(principalArn=a)
    assert r["principalArn"] == a and abs((r["createdAt"] - now()).total_seconds()) < 120, r
expect_error("ExclusionAlreadyExistsException", ecr.register_pull_time_update_exclusion, principalArn=arns[0])
expect_error("InvalidParameterException", raw.register_pull_time_update_exclusion,
             principalArn=f"arn:aws:iam::{account}:root")
listed, token = [], None
while True:  # botocore has no paginator for this action: follow nextToken by hand
    page = ecr.list_pull_time_update_exclusions(maxResults=1, **({"nextToken": token} if token else {}))
    assert len(page["pullTimeUpdateExclusions"]) <= 1, page
    listed += page["pullTimeUpdateExclusions"]
    token = page.get("nextToken")
    if not token:
        break
assert sorted(arns) == [x for x in listed if x in arns], listed
r = ecr.deregister_pull_time_update_exclusion(principalArn=arns[0])
assert r == {"principalArn": arns[0], "ResponseMetadata": r["ResponseMetadata"]}, r
expect_error("ExclusionNotFoundException", ecr.deregister_pull_time_update_exclusion, principalArn=arns[0])
expect_error("InvalidParameterException", raw.list_pull_time_update_exclusions, maxResults=0)
left = ecr.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"]
assert arns[1] in left and arns[0] not in left, left
# Exclusions stop at ECR's quota of 100 per account.
extra = [f"arn:aws:iam::{account}:user/q{i}-{suffix}" for i in range(100 - len(left))]
for a in extra:
    ecr.register_pull_time_update_exclusion(principalArn=a)
expect_error("LimitExceededException", ecr.register_pull_time_update_exclusion,
             principalArn=f"arn:aws:iam::{account}:user/one-too-many-{suffix}")
for a in extra + [arns[1]]:
    ecr.deregister_pull_time_update_exclusion(principalArn=a)
# An excluded principal's pulls leave lastRecordedPullTime alone; once deregistered they
# count again. The principal is an IAM user made through the IAM API with an ECR policy.
iam = session.client("iam", endpoint_url=endpoint, region_name="us-east-1", config=NO_RETRIES)
user = f"puller-{suffix}"
user_arn = iam.create_user(UserName=user)["User"]["Arn"]
assert user_arn == f"arn:aws:iam::{account}:user/{user}", user_arn
iam.put_user_policy(UserName=user, PolicyName="ecr", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}]}))
key = iam.create_access_key(UserName=user)["AccessKey"]
puller = boto3.session.Session(
    aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"], region_name=region,
).client("ecr", endpoint_url=endpoint, config=NO_RETRIES)
ecr.register_pull_time_update_exclusion(principalArn=user_arn)
got = puller.batch_get_image(repositoryName=imm, imageIds=[{"imageDigest": d2}])["images"]
assert [i["imageManifest"] for i in got] == [m2], got
det = ecr.describe_images(repositoryName=imm, imageIds=[{"imageDigest": d2}])["imageDetails"][0]
assert "lastRecordedPullTime" not in det, det
ecr.deregister_pull_time_update_exclusion(principalArn=user_arn)
puller.batch_get_image(repositoryName=imm, imageIds=[{"imageDigest": d2}])
det = ecr.describe_images(repositoryName=imm, imageIds=[{"imageDigest": d2}])["imageDetails"][0]
assert abs((det["lastRecordedPullTime"] - now()).total_seconds()) < 120, det
checks.append("pull time update exclusions")

for n in (repo, imm, excl):
    ecr.delete_repository(repositoryName=n, force=True)
print(json.dumps({"ok": checks, "facts": facts}))
