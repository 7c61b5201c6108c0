"""The ECR API of a running berth, driven by boto3 exactly as users drive it.

Usage: python3 ecr_boto3.py <endpoint url> <admin.credentials> <unique suffix>
Exit status 3 when boto3 is not installed (the Rust driver decides whether that fails).
Any failed check raises (exit status 1) with the reason.
"""

import base64
import configparser
import datetime
import json
import sys

from berth_e2e import NO_RETRIES, admin_session, boto3, expect_client_error  # noqa: E402

endpoint, creds_path, suffix = sys.argv[1:4]
region, session = admin_session(creds_path)
creds = configparser.ConfigParser()
creds.read(creds_path)
ecr = session.client("ecr", endpoint_url=endpoint, config=NO_RETRIES)


def expect_error(code, fn, **kwargs):
    return expect_client_error(code, fn, **kwargs)["Error"].get("Message", "")


checks = []
names = [f"e2e/ecr-{suffix}-{i}" for i in range(3)]

# create_repository
r = ecr.create_repository(repositoryName=names[0], imageTagMutability="IMMUTABLE")["repository"]
assert r["repositoryName"] == names[0], r
account = r["registryId"]
assert len(account) == 12 and account.isdigit(), r
assert r["repositoryArn"] == f"arn:aws:ecr:{region}:{account}:repository/{names[0]}", r
host = endpoint.split("://", 1)[1]
assert r["repositoryUri"] == f"{host}/{names[0]}", r
assert r["imageTagMutability"] == "IMMUTABLE", r
assert isinstance(r["createdAt"], datetime.datetime), r
assert abs((datetime.datetime.now(datetime.timezone.utc) - r["createdAt"]).total_seconds()) < 120, r
assert r["encryptionConfiguration"] == {"encryptionType": "AES256"}, r
for n in names[1:]:
    ecr.create_repository(repositoryName=n)
checks.append("create_repository")

# describe_repositories with the paginator, two per page
pages = list(
    ecr.get_paginator("describe_repositories").paginate(PaginationConfig={"PageSize": 2})
)
listed = [x["repositoryName"] for p in pages for x in p["repositories"]]
assert all(n in listed for n in names), listed
assert len(pages) >= 2, pages
assert listed == sorted(listed), listed
one = ecr.describe_repositories(repositoryNames=[names[1]])["repositories"]
assert [x["repositoryName"] for x in one] == [names[1]], one
expect_error("RepositoryNotFoundException", ecr.describe_repositories, repositoryNames=[f"e2e/missing-{suffix}"])
checks.append("describe_repositories")

# errors of create_repository
expect_error("RepositoryAlreadyExistsException", ecr.create_repository, repositoryName=names[0])
expect_error("InvalidParameterException", ecr.create_repository, repositoryName=f"E2E/Upper-{suffix}")
checks.append("create_repository errors")

# get_authorization_token
data = ecr.get_authorization_token()["authorizationData"]
assert len(data) == 1, data
token = base64.b64decode(data[0]["authorizationToken"]).decode()
assert token.startswith("AWS:") and len(token) > 20, token
lifetime = (data[0]["expiresAt"] - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
assert abs(lifetime - 12 * 3600) < 120, lifetime
assert data[0]["proxyEndpoint"] == endpoint, data
checks.append("get_authorization_token")

# delete_repository
d = ecr.delete_repository(repositoryName=names[0])["repository"]
assert d["repositoryName"] == names[0], d
expect_error("RepositoryNotFoundException", ecr.delete_repository, repositoryName=names[0])
for n in names[1:]:
    ecr.delete_repository(repositoryName=n, force=True)
checks.append("delete_repository")

# a wrong secret, and an unknown key
bad = boto3.session.Session(
    aws_access_key_id=creds["default"]["aws_access_key_id"],
    aws_secret_access_key="x" * 40,
    region_name=region,
).client("ecr", endpoint_url=endpoint, config=NO_RETRIES)
expect_error("InvalidSignatureException", bad.describe_repositories)
ghost = boto3.session.Session(
    aws_access_key_id="AKIAAAAAAAAAAAAAAAAA",
    aws_secret_access_key="x" * 40,
    region_name=region,
).client("ecr", endpoint_url=endpoint, config=NO_RETRIES)
msg = expect_error("UnrecognizedClientException", ghost.describe_repositories)
assert msg == "The security token included in the request is invalid.", msg
checks.append("authentication errors")

# an action this version does not implement
msg = expect_error(
    "UnsupportedOperationException",
    ecr.start_image_scan,
    repositoryName=names[1],
    imageId={"imageTag": "latest"},
)
assert msg == "ecr:StartImageScan is not implemented by this Berth version", msg
checks.append("unimplemented action")

print(json.dumps({"ok": checks}))
