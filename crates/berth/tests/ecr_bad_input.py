"""Bad input to the ECR API of a running berth: raw requests signed with botocore's SigV4
signer (so the body can be anything), each answered with the model's exception and HTTP
400, never a 500.

Usage: python3 ecr_bad_input.py <endpoint url> <admin.credentials> <unique suffix>
Exit status 3 when botocore is not installed. Any failed check raises (exit status 1).
"""

import configparser
import json
import sys
import urllib.error
import urllib.request

try:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
except ImportError as e:  # pragma: no cover
    print(f"botocore is not installed: {e}", file=sys.stderr)
    sys.exit(3)

endpoint, creds_path, suffix = sys.argv[1:4]
cfg = configparser.ConfigParser()
cfg.read(creds_path)
section = cfg["default"]
creds = Credentials(section["aws_access_key_id"], section["aws_secret_access_key"])
region = section["region"]
PREFIX = "AmazonEC2ContainerRegistry_V20150921."


def call(action, body, content_type="application/x-amz-json-1.1", target=None):
    """POSTs `body` (bytes, str or a JSON value) signed for ecr; returns (status, json)."""
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    headers = {"X-Amz-Target": target or PREFIX + action, "Content-Type": content_type}
    req = AWSRequest(method="POST", url=endpoint + "/", data=body, headers=headers)
    SigV4Auth(creds, "ecr", region).add_auth(req)
    prepared = req.prepare()
    raw = urllib.request.Request(
        prepared.url, data=body, headers=dict(prepared.headers), method="POST"
    )
    try:
        with urllib.request.urlopen(raw, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text)
        except ValueError:
            raise AssertionError(f"{action}: non-JSON error body {e.code}: {text[:200]!r}")


def expect(code, action, body, **kw):
    status, out = call(action, body, **kw)
    assert status != 500, f"{action} {body!r:.120}: 500 {out}"
    got = out.get("__type", "")
    assert got == code, f"{action} {body!r:.120}: expected {code}, got {status} {out}"
    assert status in (400, 413), f"{action}: status {status} {out}"
    assert out.get("message"), f"{action}: an error needs a message: {out}"
    return out["message"]


repo = f"e2e/bad-{suffix}"
status, out = call("CreateRepository", {"repositoryName": repo})
assert status == 200, out

# Framing: malformed JSON, not an object, not UTF-8, wrong member types.
expect("SerializationException", "DescribeRepositories", '{"repositoryNames": ')
expect("SerializationException", "DescribeRepositories", "[]")
expect("SerializationException", "DescribeRepositories", '"text"')
expect("SerializationException", "DescribeRepositories", b'{"repositoryNames": ["\xff\xfe"]}')
expect("SerializationException", "DescribeRepositories", {"repositoryNames": "not-a-list"})
expect("SerializationException", "DescribeRepositories", {"maxResults": "ten"})
expect("SerializationException", "CreateRepository", {"repositoryName": 5})
expect("SerializationException", "ListImages", {"repositoryName": repo, "filter": []})
expect("SerializationException", "BatchGetImage", {"repositoryName": repo, "imageIds": [1]})

# Unknown targets.
expect("UnknownOperationException", "Nope", {})
expect("UnknownOperationException", "", {}, target="AmazonEC2ContainerRegistry_V20150921")
expect("UnknownOperationException", "", {}, target="DynamoDB_20120810.ListTables")

# Model constraints: names, lengths, ranges, enums, required members.
for bad in ["UPPER", "a", "-leading", "a//b", "trailing/", "x" * 257, "sp ace", ""]:
    expect("InvalidParameterException", "CreateRepository", {"repositoryName": bad})
expect("InvalidParameterException", "CreateRepository", {})
expect("InvalidParameterException", "CreateRepository",
       {"repositoryName": f"{repo}-m", "imageTagMutability": "SOMETIMES"})
expect("InvalidParameterException", "DescribeRepositories", {"maxResults": 0})
expect("InvalidParameterException", "DescribeRepositories", {"maxResults": 1001})
expect("InvalidParameterException", "DescribeRepositories", {"registryId": "123"})
expect("InvalidParameterException", "DescribeRepositories", {"nextToken": "garbage!"})
expect("InvalidParameterException", "ListImages", {"repositoryName": repo, "maxResults": 5000})
expect("InvalidParameterException", "BatchGetImage", {"repositoryName": repo, "imageIds": []})
expect("InvalidParameterException", "PutImage",
       {"repositoryName": repo, "imageManifest": "{not json", "imageTag": "t"})
expect("InvalidParameterException", "PutImage",
       {"repositoryName": repo, "imageManifest": "{}", "imageTag": "bad tag!"})

# Oversize and malformed policies.
big = {"Version": "2012-10-17", "Statement": [
    {"Sid": f"s{i}", "Effect": "Allow", "Principal": "*", "Action": "ecr:BatchGetImage"}
    for i in range(200)]}
assert len(json.dumps(big)) > 10240
expect("InvalidParameterException", "SetRepositoryPolicy",
       {"repositoryName": repo, "policyText": json.dumps(big)})
expect("InvalidParameterException", "SetRepositoryPolicy",
       {"repositoryName": repo, "policyText": "{not a policy"})
expect("InvalidParameterException", "SetRepositoryPolicy",
       {"repositoryName": repo, "policyText": json.dumps(
           {"Version": "2012-10-17", "Statement": [{"Effect": "Maybe", "Principal": "*",
                                                    "Action": "ecr:*"}]})})

# Missing resources are the model's not-found exceptions.
expect("RepositoryNotFoundException", "DescribeImages", {"repositoryName": f"{repo}-missing"})
expect("RepositoryNotFoundException", "DeleteRepository", {"repositoryName": f"{repo}-missing"})

# A manifest whose layer descriptor does not state the stored blob's size (999 for 1,000
# bytes, 2^63) is refused with InvalidParameterException naming the digest and both sizes.
import base64
import hashlib


def upload_layer(data):
    status, out = call("InitiateLayerUpload", {"repositoryName": repo})
    assert status == 200, out
    upload = out["uploadId"]
    status, out = call("UploadLayerPart", {
        "repositoryName": repo, "uploadId": upload, "partFirstByte": 0,
        "partLastByte": len(data) - 1, "layerPartBlob": base64.b64encode(data).decode()})
    assert status == 200, out
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    status, out = call("CompleteLayerUpload",
                       {"repositoryName": repo, "uploadId": upload, "layerDigests": [digest]})
    assert status == 200, out
    return digest


layer = bytes(range(250)) * 4
layer_digest, config_digest = upload_layer(layer), upload_layer(b"{}")


def sized_manifest(layer_size):
    return json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer_size}]})


for declared in (999, 2 ** 63):
    msg = expect("InvalidParameterException", "PutImage",
                 {"repositoryName": repo, "imageManifest": sized_manifest(declared),
                  "imageTag": "sizes"})
    assert layer_digest in msg and str(declared) in msg and "1000" in msg, msg
status, out = call("PutImage", {"repositoryName": repo, "imageManifest": sized_manifest(1000),
                                "imageTag": "sizes"})
assert status == 200, out

# JSON depth and element limits: on the body itself, and on the manifest inside PutImage
# (100,000 levels that serde alone would skip in an unknown member and store).
msg = expect("SerializationException", "DescribeRepositories",
             '{"x":' + "[" * 100000 + "]" * 100000 + "}")
assert "nested more than 64 levels" in msg, msg
msg = expect("SerializationException", "DescribeRepositories",
             '{"x":[' + "0," * 20000 + "0]}")
assert "more than 10000" in msg, msg
deep_manifest = sized_manifest(1000)[:-1] + ',"x":' + "[" * 100000 + "]" * 100000 + "}"
msg = expect("InvalidParameterException", "PutImage",
             {"repositoryName": repo, "imageManifest": deep_manifest, "imageTag": "deep"})
assert "nested more than 64 levels" in msg, msg

# Unknown members are ignored, as AWS JSON services do.
status, out = call("DescribeRepositories", {"repositoryNames": [repo], "someFutureMember": 1})
assert status == 200, out

print(json.dumps({"ok": True}))
