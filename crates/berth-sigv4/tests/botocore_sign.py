#!/usr/bin/env python3
"""Signs a set of requests with botocore and prints them as JSON, for tests/botocore.rs.

Usage: botocore_sign.py PORT

Two kinds of cases:
- real clients (botocore.session clients for ecr, iam, sts with --endpoint-url
  http://127.0.0.1:PORT): a `before-send` hook records the request exactly as it would go on
  the wire and stops it there;
- botocore's signers (SigV4Auth, SigV4QueryAuth) applied directly to AWSRequests with awkward
  paths, queries, headers, a Date header, a declared or unsigned payload hash.

Each case: name, service, region, method, path, query (raw, as on the wire), headers
([name, value] in order, Host included as the HTTP client would send it), body_hex,
unsigned_payload_allowed. Exits 3 when botocore cannot be imported.
"""
import json
import sys
from urllib.parse import urlsplit

try:
    import botocore
    import botocore.session
    from botocore.auth import SigV4Auth, SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.config import Config
    from botocore.credentials import Credentials
except ImportError as e:  # pragma: no cover
    print(f"botocore is not importable ({e}); install it with: pip install botocore", file=sys.stderr)
    sys.exit(3)

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
ENDPOINT = f"http://127.0.0.1:{PORT}"
AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEBYaDH+/session=token=="

cases = []


def wire_host(url):
    parts = urlsplit(url)
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(parts.scheme)
    if parts.port is not None and parts.port != default:
        host = f"{host}:{parts.port}"
    return host


def text(v):
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def record(name, service, region, method, url, headers, body, unsigned_ok=False):
    parts = urlsplit(url)
    hdrs = [[text(k), text(v)] for k, v in headers]
    if not any(k.lower() == "host" for k, _ in hdrs):
        hdrs.insert(0, ["Host", wire_host(url)])
    if body is None:
        body = b""
    elif hasattr(body, "read"):
        body = body.read()
    elif isinstance(body, str):
        body = body.encode("utf-8")
    cases.append(
        {
            "name": name,
            "service": service,
            "region": region,
            "method": method,
            "path": parts.path or "/",
            "query": parts.query,
            "headers": hdrs,
            "body_hex": body.hex(),
            "unsigned_payload_allowed": unsigned_ok,
        }
    )


class Captured(Exception):
    pass


def client_case(name, service, region, call, token=None):
    session = botocore.session.get_session()
    client = session.create_client(
        service,
        region_name=region,
        endpoint_url=ENDPOINT,
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
        aws_session_token=token,
        config=Config(retries={"max_attempts": 1}),
    )

    def before_send(request, **kwargs):
        record(name, service, region, request.method, request.url, request.headers.items(), request.body)
        raise Captured()

    client.meta.events.register("before-send", before_send)
    try:
        call(client)
    except Captured:
        return
    raise AssertionError(f"{name}: request was not captured")


def signer_case(name, service, region, method, url, headers=(), body=b"", query_auth=None, token=None,
                payload_signing=True, unsigned_ok=False):
    creds = Credentials(AKID, SECRET, token)
    request = AWSRequest(method=method, url=url, data=body)
    for k, v in headers:
        request.headers[k] = v  # HTTPHeaders appends: a repeated name stays repeated
    if not payload_signing:
        request.context["payload_signing_enabled"] = False
    if query_auth is None:
        SigV4Auth(creds, service, region).add_auth(request)
    else:
        SigV4QueryAuth(creds, service, region, expires=query_auth).add_auth(request)
    record(name, service, region, method, request.url, request.headers.items(), request.body, unsigned_ok)


# Real clients, as `aws ecr ... --endpoint-url` and boto3 use them.
client_case("ecr-create-repository", "ecr", "us-west-2",
            lambda c: c.create_repository(repositoryName="team/app", imageTagMutability="IMMUTABLE",
                                          tags=[{"Key": "k=v", "Value": "a b&c/é"}]))
client_case("ecr-get-authorization-token", "ecr", "us-west-2", lambda c: c.get_authorization_token())
client_case("ecr-describe-repositories-session-token", "ecr", "eu-central-1",
            lambda c: c.describe_repositories(repositoryNames=["ab", "team/c-d"], maxResults=10), token=TOKEN)
client_case("ecr-put-image", "ecr", "us-east-1",
            lambda c: c.put_image(repositoryName="app", imageTag="v1.0",
                                  imageManifest=json.dumps({"schemaVersion": 2, "annotations": {"note": "ünïcødé ✓"}})))
client_case("iam-create-user", "iam", "us-east-1", lambda c: c.create_user(UserName="alice", Path="/team/"))
client_case("iam-put-user-policy", "iam", "us-east-1",
            lambda c: c.put_user_policy(UserName="alice", PolicyName="pull+push",
                                        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                                            {"Effect": "Allow", "Action": "ecr:*", "Resource": "arn:aws:ecr:*:*:repository/a*"}]})))
client_case("sts-get-caller-identity", "sts", "us-east-1", lambda c: c.get_caller_identity())


def presigned_sts(name, token=None):
    session = botocore.session.get_session()
    client = session.create_client("sts", region_name="us-east-1", endpoint_url=ENDPOINT,
                                   aws_access_key_id=AKID, aws_secret_access_key=SECRET, aws_session_token=token)
    # HttpMethod: botocore otherwise signs the operation's own method (POST) while the URL is
    # fetched with GET (boto/boto3#756).
    url = client.generate_presigned_url("get_caller_identity", ExpiresIn=900, HttpMethod="GET")
    record(name, "sts", "us-east-1", "GET", url, [], b"")


presigned_sts("sts-presigned-get-caller-identity")
presigned_sts("sts-presigned-get-caller-identity-session-token", token=TOKEN)

# botocore's signers on awkward requests.
signer_case("special-path-and-query", "ecr", "us-west-2", "GET",
            f"{ENDPOINT}/v2/a%20b/c%2Fd/%E1%88%B4/~x/x+y/!$&'()*,;=:@/?b=2&a=1&a=0&empty=&enc=%2F%20%2B&tilde=~&%E1%88%B4=%E2%9C%93")
signer_case("dot-segments-and-double-slashes", "ecr", "us-west-2", "GET", f"{ENDPOINT}/a/./b/../c//d/")
signer_case("repeated-and-spaced-headers", "ecr", "us-west-2", "POST", f"{ENDPOINT}/",
            headers=[("X-Amz-Target", "AmazonEC2ContainerRegistry_V20150921.ListImages"),
                     ("Content-Type", "application/x-amz-json-1.1"),
                     ("X-Custom", "  a   b\tc  "), ("X-Custom", "second"), ("User-Agent", "not signed")],
            body=b'{"repositoryName":"app"}')
signer_case("date-header-instead-of-x-amz-date", "iam", "us-east-1", "POST", f"{ENDPOINT}/",
            headers=[("Date", "Thu, 01 Jan 1970 00:00:00 GMT"),
                     ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")],
            body=b"Action=ListUsers&Version=2010-05-08")
signer_case("declared-content-sha256", "ecr", "us-west-2", "POST", f"{ENDPOINT}/",
            headers=[("X-Amz-Content-SHA256", "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9")],
            body=b"hello world")
signer_case("unsigned-payload-over-https", "ecr", "us-west-2", "PUT",
            f"https://127.0.0.1:{PORT}/upload", body=b"streamed bytes", payload_signing=False, unsigned_ok=True)
signer_case("session-token-header", "ecr", "us-west-2", "POST", f"{ENDPOINT}/", body=b"{}", token=TOKEN)
signer_case("ipv6-host-with-port", "ecr", "us-west-2", "POST", f"http://[::1]:{PORT}/", body=b"{}")
signer_case("presigned-get-with-query-and-token", "ecr", "us-west-2", "GET",
            f"{ENDPOINT}/v2/app/blobs/sha256:abc?x=1&y=a%2Fb", query_auth=60, token=TOKEN)
signer_case("presigned-max-expiry", "ecr", "us-west-2", "GET", f"{ENDPOINT}/", query_auth=604800)

json.dump({"botocore_version": botocore.__version__, "cases": cases}, sys.stdout, indent=1, ensure_ascii=False)
