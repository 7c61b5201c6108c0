"""Shared setup of the boto3 end-to-end scripts in this directory (imported, not run).

Each script is run as `python3 <script> <endpoint url> <admin.credentials> <unique suffix> [...]`
by `common::run_python_script`. Importing this module exits with status 3 when boto3 is not
installed (the Rust driver decides whether that fails the test).
"""

import configparser
import os
import sys

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError
except ImportError as e:  # pragma: no cover
    print(f"boto3 is not installed: {e}", file=sys.stderr)
    sys.exit(3)

# One attempt per call: a retry would hide the error a check expects.
NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"})


def admin_session(creds_path):
    """A boto3 session that sees nothing of the environment but `creds_path` (an AWS shared
    credentials file with `region`, as berth writes admin.credentials). Returns (region, session)."""
    for k in list(os.environ):
        if k.startswith("AWS_"):
            del os.environ[k]
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = creds_path
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    creds = configparser.ConfigParser()
    creds.read(creds_path)
    region = creds["default"]["region"]
    return region, boto3.session.Session(profile_name="default", region_name=region)


def expect_client_error(code, fn, **kwargs):
    """Calls `fn(**kwargs)`, which must fail with the AWS error `code` and HTTP 400; returns
    the error response."""
    try:
        fn(**kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"{fn.__name__}: expected {code}, got {got}: {e}"
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400, e.response
        return e.response
    raise AssertionError(f"{fn.__name__}({kwargs}) succeeded; expected {code}")
