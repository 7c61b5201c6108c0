"""The ECR registry-configuration API of a running berth, driven by boto3: repository and
registry policies, resource tags, account settings, repository creation templates, and
CREATE_ON_PUSH through /v2 pushes authenticated with an ECR login token.

Usage: python3 ecr_policies_boto3.py <endpoint url> <admin.credentials> <unique suffix>
Exit status 3 when boto3 is not installed (the Rust driver decides whether that fails).
Any failed check raises (exit status 1) with the reason.
"""

import base64
import datetime
import hashlib
import json
import sys
import urllib.error
import urllib.request

from berth_e2e import NO_RETRIES, admin_session, expect_client_error  # noqa: E402

endpoint, creds_path, suffix = sys.argv[1:4]
region, session = admin_session(creds_path)
ecr = session.client("ecr", endpoint_url=endpoint, config=NO_RETRIES)


def expect_error(code, fn, **kwargs):
    return expect_client_error(code, fn, **kwargs)["Error"].get("Message", "")


checks = []
s = suffix.replace("_", "-").lower()
repo = f"e2e/pol-{s}"
r = ecr.create_repository(repositoryName=repo)["repository"]
account = r["registryId"]
arn = r["repositoryArn"]


def pull_policy(principal_account="210987654321", sid="pull"):
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": sid,
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{principal_account}:root"},
                    "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                }
            ],
        },
        indent=2,
    )


# ---- repository policies ----
missing = f"e2e/missing-{s}"
expect_error("RepositoryNotFoundException", ecr.set_repository_policy, repositoryName=missing, policyText=pull_policy())
expect_error("RepositoryNotFoundException", ecr.get_repository_policy, repositoryName=missing)
expect_error("RepositoryNotFoundException", ecr.delete_repository_policy, repositoryName=missing)
msg = expect_error("RepositoryPolicyNotFoundException", ecr.get_repository_policy, repositoryName=repo)
assert repo in msg and account in msg, msg
expect_error("RepositoryPolicyNotFoundException", ecr.delete_repository_policy, repositoryName=repo)
expect_error("InvalidParameterException", ecr.set_repository_policy, repositoryName=repo, policyText="{not json")
# An identity policy (no Principal) is not a repository policy.
identity = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}]})
msg = expect_error("InvalidParameterException", ecr.set_repository_policy, repositoryName=repo, policyText=identity)
assert "principal" in msg.lower(), msg
# ECR's size limit: 10,240 characters, whitespace included.
text = pull_policy()
at_limit = text + " " * (10240 - len(text))
ecr.set_repository_policy(repositoryName=repo, policyText=at_limit)
msg = expect_error("InvalidParameterException", ecr.set_repository_policy, repositoryName=repo, policyText=at_limit + " ")
assert "10241" in msg and "10240" in msg, msg
out = ecr.set_repository_policy(repositoryName=repo, policyText=text)
assert out["registryId"] == account and out["repositoryName"] == repo and out["policyText"] == text, out
got = ecr.get_repository_policy(repositoryName=repo)
assert got["policyText"] == text and got["repositoryName"] == repo and got["registryId"] == account, got
# A policy that would lock the caller out of setting policies needs force.
lockout = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "nomore", "Effect": "Deny", "Principal": "*", "Action": "ecr:SetRepositoryPolicy"}],
    }
)
msg = expect_error("InvalidParameterException", ecr.set_repository_policy, repositoryName=repo, policyText=lockout)
assert "force" in msg, msg
assert ecr.get_repository_policy(repositoryName=repo)["policyText"] == text
ecr.set_repository_policy(repositoryName=repo, policyText=lockout, force=True)
assert ecr.get_repository_policy(repositoryName=repo)["policyText"] == lockout
deleted = ecr.delete_repository_policy(repositoryName=repo)
assert deleted["policyText"] == lockout and deleted["repositoryName"] == repo, deleted
expect_error("RepositoryPolicyNotFoundException", ecr.get_repository_policy, repositoryName=repo)
checks.append("repository policies")

# ---- registry policy ----
expect_error("RegistryPolicyNotFoundException", ecr.get_registry_policy)
expect_error("RegistryPolicyNotFoundException", ecr.delete_registry_policy)
expect_error("InvalidParameterException", ecr.put_registry_policy, policyText="[]")
registry_policy = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "replicate",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::210987654321:root"},
                "Action": ["ecr:CreateRepository", "ecr:ReplicateImage"],
                "Resource": f"arn:aws:ecr:{region}:{account}:repository/*",
            }
        ],
    }
)
out = ecr.put_registry_policy(policyText=registry_policy)
assert out == {"registryId": account, "policyText": registry_policy, "ResponseMetadata": out["ResponseMetadata"]}, out
assert ecr.get_registry_policy()["policyText"] == registry_policy
out = ecr.delete_registry_policy()
assert out["policyText"] == registry_policy and out["registryId"] == account, out
expect_error("RegistryPolicyNotFoundException", ecr.get_registry_policy)
checks.append("registry policy")

# ---- tags ----
tagged = f"e2e/tags-{s}"
t = ecr.create_repository(repositoryName=tagged, tags=[{"Key": "team", "Value": "blue"}, {"Key": "env", "Value": ""}])
tagged_arn = t["repository"]["repositoryArn"]
assert ecr.list_tags_for_resource(resourceArn=tagged_arn)["tags"] == [
    {"Key": "env", "Value": ""},
    {"Key": "team", "Value": "blue"},
]
ecr.tag_resource(resourceArn=tagged_arn, tags=[{"Key": "team", "Value": "green"}, {"Key": "cost:center", "Value": "42 / a+b=c@d"}])
ecr.untag_resource(resourceArn=tagged_arn, tagKeys=["env", "absent"])
assert ecr.list_tags_for_resource(resourceArn=tagged_arn)["tags"] == [
    {"Key": "cost:center", "Value": "42 / a+b=c@d"},
    {"Key": "team", "Value": "green"},
]
too_many = [{"Key": f"k{i}", "Value": "v"} for i in range(51)]
expect_error("TooManyTagsException", ecr.create_repository, repositoryName=f"e2e/many-{s}", tags=too_many)
expect_error("RepositoryNotFoundException", ecr.describe_repositories, repositoryNames=[f"e2e/many-{s}"])
expect_error("InvalidTagParameterException", ecr.create_repository, repositoryName=f"e2e/bad-{s}", tags=[{"Key": "aws:x", "Value": "v"}])
expect_error("RepositoryNotFoundException", ecr.describe_repositories, repositoryNames=[f"e2e/bad-{s}"])
# The limit counts what the repository would end up with: 2 + 49 new > 50.
expect_error("TooManyTagsException", ecr.tag_resource, resourceArn=tagged_arn, tags=[{"Key": f"n{i}", "Value": "v"} for i in range(49)])
assert len(ecr.list_tags_for_resource(resourceArn=tagged_arn)["tags"]) == 2
ecr.tag_resource(resourceArn=tagged_arn, tags=[{"Key": f"n{i}", "Value": "v"} for i in range(48)])
assert len(ecr.list_tags_for_resource(resourceArn=tagged_arn)["tags"]) == 50
expect_error("InvalidTagParameterException", ecr.tag_resource, resourceArn=tagged_arn, tags=[{"Key": "k" * 129, "Value": "v"}])
expect_error("InvalidTagParameterException", ecr.tag_resource, resourceArn=tagged_arn, tags=[{"Key": "k", "Value": "v" * 257}])
expect_error("InvalidTagParameterException", ecr.tag_resource, resourceArn=tagged_arn, tags=[{"Key": "bad*key", "Value": "v"}])
expect_error("InvalidTagParameterException", ecr.untag_resource, resourceArn=tagged_arn, tagKeys=["aws:reserved"])
expect_error("InvalidParameterException", ecr.list_tags_for_resource, resourceArn="not-an-arn")
expect_error("InvalidParameterException", ecr.list_tags_for_resource, resourceArn=f"arn:aws:ecr:{region}:{account}:template/x")
missing_arn = f"arn:aws:ecr:{region}:{account}:repository/{missing}"
expect_error("RepositoryNotFoundException", ecr.list_tags_for_resource, resourceArn=missing_arn)
expect_error("RepositoryNotFoundException", ecr.tag_resource, resourceArn=missing_arn, tags=[{"Key": "a", "Value": "b"}])
expect_error("RepositoryNotFoundException", ecr.untag_resource, resourceArn=missing_arn, tagKeys=["a"])
checks.append("tags")

# ---- a repository's policy and tags go with it ----
ecr.set_repository_policy(repositoryName=tagged, policyText=pull_policy())
ecr.delete_repository(repositoryName=tagged, force=True)
ecr.create_repository(repositoryName=tagged)
assert ecr.list_tags_for_resource(resourceArn=tagged_arn)["tags"] == []
expect_error("RepositoryPolicyNotFoundException", ecr.get_repository_policy, repositoryName=tagged)
ecr.delete_repository(repositoryName=tagged)
checks.append("delete_repository takes policy and tags")

# ---- account settings ----
defaults = {"BASIC_SCAN_TYPE_VERSION": "AWS_NATIVE", "REGISTRY_POLICY_SCOPE": "V2", "BLOB_MOUNTING": "ENABLED"}
for name, value in defaults.items():
    got = ecr.get_account_setting(name=name)
    assert (got["name"], got["value"]) == (name, value), got
out = ecr.put_account_setting(name="BLOB_MOUNTING", value="DISABLED")
assert (out["name"], out["value"]) == ("BLOB_MOUNTING", "DISABLED"), out
assert ecr.get_account_setting(name="BLOB_MOUNTING")["value"] == "DISABLED"
ecr.put_account_setting(name="REGISTRY_POLICY_SCOPE", value="V2")
expect_error("InvalidParameterException", ecr.get_account_setting, name="NO_SUCH_SETTING")
expect_error("InvalidParameterException", ecr.put_account_setting, name="NO_SUCH_SETTING", value="V2")
expect_error("InvalidParameterException", ecr.put_account_setting, name="BLOB_MOUNTING", value="SOMETIMES")
expect_error("InvalidParameterException", ecr.put_account_setting, name="REGISTRY_POLICY_SCOPE", value="V3")
checks.append("account settings")

# ---- /v2 with a login token ----
token = base64.b64decode(ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]).decode()
basic = "Basic " + base64.b64encode(token.encode()).decode()


def v2(method, path, body=None, headers=None):
    req = urllib.request.Request(f"{endpoint}/v2/{path}", data=body, method=method)
    req.add_header("Authorization", basic)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def digest(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def push_image(name, tag, layer):
    config = b"{}"
    for blob in (config, layer):
        status, body, _ = v2("POST", f"{name}/blobs/uploads/?digest={digest(blob)}", blob, {"Content-Type": "application/octet-stream"})
        if status != 201:
            return status, body
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(layer), "size": len(layer)}],
        }
    ).encode()
    status, body, _ = v2("PUT", f"{name}/manifests/{tag}", manifest, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    return status, body


# BLOB_MOUNTING=DISABLED: a cross-repository mount falls back to an upload (202).
src, dst = f"e2e/mount-src-{s}", f"e2e/mount-dst-{s}"
layer = f"mount layer {s}".encode()
assert push_image(src, "v1", layer)[0] == 201
status, _, _ = v2("POST", f"{dst}/blobs/uploads/?mount={digest(layer)}&from={src}")
assert status == 202, status
ecr.put_account_setting(name="BLOB_MOUNTING", value="ENABLED")
status, _, headers = v2("POST", f"{dst}/blobs/uploads/?mount={digest(layer)}&from={src}")
assert status == 201, status
checks.append("BLOB_MOUNTING")

# ---- repository creation templates ----
templates = ecr.describe_repository_creation_templates(prefixes=["ROOT"])
assert templates["registryId"] == account, templates
(root,) = templates["repositoryCreationTemplates"]
assert root["prefix"] == "ROOT" and root["appliedFor"] == ["CREATE_ON_PUSH"], root
assert root["imageTagMutability"] == "MUTABLE", root
expect_error("TemplateAlreadyExistsException", ecr.create_repository_creation_template, prefix="ROOT", appliedFor=["CREATE_ON_PUSH"])
expect_error("InvalidParameterException", ecr.create_repository_creation_template, prefix="Bad/Prefix", appliedFor=["CREATE_ON_PUSH"])
expect_error("InvalidParameterException", ecr.create_repository_creation_template, prefix=f"x-{s}", appliedFor=["SOMETIMES"])
expect_error("InvalidParameterException", ecr.create_repository_creation_template, prefix=f"x-{s}", appliedFor=[])
expect_error("InvalidParameterException", ecr.create_repository_creation_template, prefix=f"x-{s}", appliedFor=["REPLICATION"], repositoryPolicy=identity)
expect_error("InvalidParameterException", ecr.create_repository_creation_template, prefix=f"x-{s}", appliedFor=["REPLICATION"], imageTagMutability="IMMUTABLE_WITH_EXCLUSION")
expect_error("InvalidParameterException", ecr.create_repository_creation_template, prefix=f"x-{s}", appliedFor=["REPLICATION"], encryptionConfiguration={"encryptionType": "KMS"})
expect_error("InvalidTagParameterException", ecr.create_repository_creation_template, prefix=f"x-{s}", appliedFor=["REPLICATION"], resourceTags=[{"Key": "aws:x", "Value": "y"}])
expect_error("InvalidParameterException", ecr.create_repository_creation_template, prefix=f"x-{s}", appliedFor=["CREATE_ON_PUSH"], lifecyclePolicy='{"rules": []}')
expect_error("TemplateNotFoundException", ecr.update_repository_creation_template, prefix=f"x-{s}", description="d")
expect_error("TemplateNotFoundException", ecr.delete_repository_creation_template, prefix=f"x-{s}")
assert ecr.describe_repository_creation_templates(prefixes=[f"x-{s}"])["repositoryCreationTemplates"] == []

lifecycle = '{\n  "rules": [ {"rulePriority": 1, "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 5}, "action": {"type": "expire"}} ]\n}\n'
full = ecr.create_repository_creation_template(
    prefix=f"full-{s}/",
    description="everything",
    appliedFor=["REPLICATION", "CREATE_ON_PUSH", "PULL_THROUGH_CACHE"],
    imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
    imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "latest"}],
    repositoryPolicy=pull_policy(),
    lifecyclePolicy=lifecycle,
    resourceTags=[{"Key": "a", "Value": "1"}],
    encryptionConfiguration={"encryptionType": "AES256"},
    customRoleArn=f"arn:aws:iam::{account}:role/ecr-templates",
)["repositoryCreationTemplate"]
assert full["prefix"] == f"full-{s}", full  # the implied trailing "/" is not stored
assert full["appliedFor"] == ["CREATE_ON_PUSH", "PULL_THROUGH_CACHE", "REPLICATION"], full
assert full["lifecyclePolicy"] == lifecycle and full["repositoryPolicy"] == pull_policy(), full
assert full["imageTagMutabilityExclusionFilters"] == [{"filterType": "WILDCARD", "filter": "latest"}], full
assert full["resourceTags"] == [{"Key": "a", "Value": "1"}], full
assert full["customRoleArn"] == f"arn:aws:iam::{account}:role/ecr-templates", full
assert isinstance(full["createdAt"], datetime.datetime), full
upd = ecr.update_repository_creation_template(prefix=f"full-{s}", description="changed", imageTagMutability="MUTABLE")["repositoryCreationTemplate"]
assert upd["description"] == "changed" and upd["imageTagMutability"] == "MUTABLE", upd
assert "imageTagMutabilityExclusionFilters" not in upd, upd
assert upd["lifecyclePolicy"] == lifecycle and upd["resourceTags"] == full["resourceTags"], upd
assert upd["updatedAt"] >= upd["createdAt"], upd

# Pagination: five more templates, two per page.
page_prefixes = [f"page-{s}/t{i}" for i in range(5)]
for p in page_prefixes:
    ecr.create_repository_creation_template(prefix=p, appliedFor=["REPLICATION"])
pages = list(ecr.get_paginator("describe_repository_creation_templates").paginate(PaginationConfig={"PageSize": 2}))
listed = [t["prefix"] for p in pages for t in p["repositoryCreationTemplates"]]
assert all(p in listed for p in page_prefixes + ["ROOT", f"full-{s}"]), listed
assert listed == sorted(listed) and len(listed) == len(set(listed)), listed
assert max(len(p["repositoryCreationTemplates"]) for p in pages) == 2, pages
expect_error("InvalidParameterException", ecr.describe_repository_creation_templates, nextToken="garbage")
some = ecr.describe_repository_creation_templates(prefixes=[page_prefixes[3], page_prefixes[1] + "/", "absent"])
assert [t["prefix"] for t in some["repositoryCreationTemplates"]] == [page_prefixes[1], page_prefixes[3]], some
for p in page_prefixes + [f"full-{s}"]:
    d = ecr.delete_repository_creation_template(prefix=p)["repositoryCreationTemplate"]
    assert d["prefix"] == p, d
expect_error("TemplateNotFoundException", ecr.delete_repository_creation_template, prefix=f"full-{s}")
checks.append("repository creation templates")

# ---- CREATE_ON_PUSH ----
root_backup = ecr.delete_repository_creation_template(prefix="ROOT")["repositoryCreationTemplate"]
try:
    status, body = push_image(f"nowhere-{s}/app", "v1", b"orphan layer")
    assert status == 404, (status, body)
    err = json.loads(body)["errors"][0]
    assert err["code"] == "NAME_UNKNOWN", err
    assert err["message"] == f"repository nowhere-{s}/app does not exist", err
    status, body, _ = v2("POST", f"nowhere-{s}/app/blobs/uploads/")
    assert status == 404 and json.loads(body)["errors"][0]["code"] == "NAME_UNKNOWN", (status, body)
    expect_error("RepositoryNotFoundException", ecr.describe_repositories, repositoryNames=[f"nowhere-{s}/app"])
    expect_error("RepositoryNotFoundException", ecr.initiate_layer_upload, repositoryName=f"nowhere-{s}/app")

    team, special = f"team-{s}", f"team-{s}/special"
    # Besides a cross-account pull grant, the template's policy denies listing tags, so
    # that the policy of a repository created by a push is seen to apply at once.
    team_policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": json.loads(pull_policy(sid="teampull"))["Statement"]
            + [{"Sid": "nolist", "Effect": "Deny", "Principal": "*", "Action": "ecr:ListImages"}],
        }
    )
    ecr.create_repository_creation_template(
        prefix=team,
        appliedFor=["CREATE_ON_PUSH"],
        imageTagMutability="IMMUTABLE",
        repositoryPolicy=team_policy,
        lifecyclePolicy=lifecycle,
        resourceTags=[{"Key": "owner", "Value": "team"}],
    )
    ecr.create_repository_creation_template(
        prefix=special,
        appliedFor=["CREATE_ON_PUSH"],
        resourceTags=[{"Key": "owner", "Value": "special"}],
    )
    # A longer prefix that is not for pushes does not win.
    ecr.create_repository_creation_template(prefix=f"{special}/cache", appliedFor=["PULL_THROUGH_CACHE"])

    app = f"{team}/app"
    assert push_image(app, "v1", f"app layer {s}".encode()) == (201, b""), "push to team/app"
    (desc,) = ecr.describe_repositories(repositoryNames=[app])["repositories"]
    assert desc["imageTagMutability"] == "IMMUTABLE", desc
    assert ecr.list_tags_for_resource(resourceArn=desc["repositoryArn"])["tags"] == [{"Key": "owner", "Value": "team"}]
    assert ecr.get_repository_policy(repositoryName=app)["policyText"] == team_policy
    # ... and the template's lifecycle policy.
    assert ecr.get_lifecycle_policy(repositoryName=app)["lifecyclePolicyText"] == lifecycle
    status, body, _ = v2("GET", f"{app}/tags/list")
    assert status == 403, (status, body)
    status, body, _ = v2("GET", f"{special}/cache/x/tags/list")
    assert status == 404, (status, body)  # not denied; just not pushed yet
    # The template's IMMUTABLE is enforced: moving v1 is refused.
    status, _ = push_image(app, "v1", f"other layer {s}".encode())
    assert status == 400, status

    deep = f"{special}/cache/x"
    assert push_image(deep, "v1", f"deep layer {s}".encode())[0] == 201
    (desc,) = ecr.describe_repositories(repositoryNames=[deep])["repositories"]
    assert desc["imageTagMutability"] == "MUTABLE", desc
    assert ecr.list_tags_for_resource(resourceArn=desc["repositoryArn"])["tags"] == [{"Key": "owner", "Value": "special"}]
    expect_error("RepositoryPolicyNotFoundException", ecr.get_repository_policy, repositoryName=deep)
    expect_error("LifecyclePolicyNotFoundException", ecr.get_lifecycle_policy, repositoryName=deep)
    # The prefix itself is not under the prefix.
    assert push_image(team, "v1", b"x")[0] == 404

    # ECR API pushes create too.
    up = ecr.initiate_layer_upload(repositoryName=f"{team}/api")
    assert up["uploadId"], up
    (desc,) = ecr.describe_repositories(repositoryNames=[f"{team}/api"])["repositories"]
    assert desc["imageTagMutability"] == "IMMUTABLE", desc

    for n in (app, deep, f"{team}/api"):
        ecr.delete_repository(repositoryName=n, force=True)
    for p in (f"{special}/cache", special, team):
        ecr.delete_repository_creation_template(prefix=p)
finally:
    ecr.create_repository_creation_template(
        prefix="ROOT",
        appliedFor=root_backup["appliedFor"],
        imageTagMutability=root_backup["imageTagMutability"],
        description=root_backup.get("description", ""),
    )
checks.append("CREATE_ON_PUSH")

for n in (repo, src, dst):
    ecr.delete_repository(repositoryName=n, force=True)
print(json.dumps({"ok": checks}))
