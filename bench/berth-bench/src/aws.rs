//! The AWS-protocol side of Berth, signed with SigV4 (berth-sigv4's signer, the same
//! canonicalization botocore uses): the ECR API (JSON 1.1 on `POST /`) and the few IAM Query
//! and STS Query API calls the bench needs to set up a user with an identity policy.

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use http::{header, HeaderName, Method};
use serde_json::Value;

use crate::auth::{basic_header, split_login_token, AccessKey};
use crate::client::{status_error, BenchError, Registry};

const ECR_TARGET_PREFIX: &str = "AmazonEC2ContainerRegistry_V20150921.";
const ECR_CONTENT_TYPE: &str = "application/x-amz-json-1.1";
const QUERY_CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
/// AWS SDKs sign IAM and global STS requests for this region.
const GLOBAL_REGION: &str = "us-east-1";

/// Signs requests with one access key and sends them over a [`Registry`]'s transport.
#[derive(Clone)]
pub struct AwsClient {
    reg: Registry,
    key: AccessKey,
    region: String,
}

impl AwsClient {
    /// `reg` should carry no `/v2` credentials; each request gets its own signature.
    pub fn new(reg: Registry, key: AccessKey, region: &str) -> Result<Self> {
        Ok(AwsClient {
            reg: reg.with_auth(None)?,
            key,
            region: region.to_string(),
        })
    }

    /// A copy over one connection of its own (see [`Registry::dedicated`]).
    pub fn dedicated(&self) -> AwsClient {
        AwsClient {
            reg: self.reg.dedicated(),
            ..self.clone()
        }
    }

    /// Signs and sends `POST /` with `body` and the extra `headers`; returns the response body
    /// of a 200, a `BenchError::Status` otherwise.
    async fn post_signed(
        &self,
        what: &str,
        service: &str,
        region: &str,
        headers: &[(&'static str, String)],
        body: Bytes,
    ) -> Result<Bytes> {
        let host = self.reg.authority().to_string();
        let mut req =
            berth_sigv4::Request::new("POST", "/", "", berth_sigv4::PayloadHash::of_body(&body))
                .with_header("host", &host);
        for (k, v) in headers {
            req = req.with_header(k, v);
        }
        let creds = berth_sigv4::Credentials {
            access_key_id: &self.key.id,
            secret_access_key: &self.key.secret,
            session_token: None,
        };
        let sig = berth_sigv4::sign_request(
            &req,
            &creds,
            region,
            service,
            time::OffsetDateTime::now_utc(),
        )
        .map_err(|e| anyhow!("signing {what}: {e}"))?;
        let mut all: Vec<(HeaderName, String)> = headers
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), v.clone()))
            .collect();
        all.push((header::HOST, host.clone()));
        for (k, v) in sig.headers() {
            all.push((HeaderName::from_static(k), v));
        }
        let r = self.reg.call(Method::POST, "/", &all, body).await?;
        if r.status.as_u16() != 200 {
            return Err(status_error(what, &r).into());
        }
        Ok(r.body)
    }

    /// One ECR API action; returns the JSON answer.
    pub async fn ecr(&self, action: &str, input: &Value) -> Result<Value> {
        let body = Bytes::from(serde_json::to_vec(input)?);
        let headers = [
            ("content-type", ECR_CONTENT_TYPE.to_string()),
            ("x-amz-target", format!("{ECR_TARGET_PREFIX}{action}")),
        ];
        let out = self
            .post_signed(action, "ecr", &self.region, &headers, body)
            .await?;
        serde_json::from_slice(&out)
            .map_err(|e| BenchError::Verify(format!("{action} answer is not JSON: {e}")).into())
    }

    /// One AWS Query API action of `service` (`iam` or `sts`, API `version`); returns the
    /// XML answer.
    async fn query(
        &self,
        service: &str,
        version: &str,
        action: &str,
        params: &[(&str, &str)],
    ) -> Result<String> {
        let enc = |s: &str| berth_sigv4::uri_encode(s.as_bytes(), false);
        let mut form = format!("Action={}&Version={}", enc(action), enc(version));
        for (k, v) in params {
            form.push_str(&format!("&{}={}", enc(k), enc(v)));
        }
        let headers = [("content-type", QUERY_CONTENT_TYPE.to_string())];
        let out = self
            .post_signed(action, service, GLOBAL_REGION, &headers, Bytes::from(form))
            .await?;
        String::from_utf8(out.to_vec()).with_context(|| format!("{action} answer is not UTF-8"))
    }

    async fn iam(&self, action: &str, params: &[(&str, &str)]) -> Result<String> {
        self.query("iam", "2010-05-08", action, params).await
    }

    /// The account of this key (`sts:GetCallerIdentity`).
    pub async fn account_id(&self) -> Result<String> {
        let xml = self
            .query("sts", "2011-06-15", "GetCallerIdentity", &[])
            .await?;
        xml_text(&xml, "Account")
    }

    /// `GetAuthorizationToken`, checked as a client would use it: returns the `/v2` Basic
    /// header value made from the token (`AWS:<password>`).
    pub async fn login_header(&self) -> Result<String> {
        let v = self
            .ecr("GetAuthorizationToken", &Value::Object(Default::default()))
            .await?;
        let token = v
            .pointer("/authorizationData/0/authorizationToken")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                BenchError::Verify(format!("GetAuthorizationToken without a token: {v}"))
            })?;
        if v.pointer("/authorizationData/0/expiresAt").is_none() {
            return Err(
                BenchError::Verify("GetAuthorizationToken without expiresAt".into()).into(),
            );
        }
        let (user, password) = split_login_token(token)
            .map_err(|e| BenchError::Verify(format!("authorizationToken: {e}")))?;
        if user != "AWS" || password.is_empty() {
            return Err(BenchError::Verify(format!(
                "authorizationToken is for user {user:?}, expected AWS"
            ))
            .into());
        }
        Ok(basic_header(&user, &password))
    }

    /// Creates IAM user `name` with an access key and the inline policy `policy` (JSON);
    /// returns the new key.
    pub async fn create_user_with_policy(&self, name: &str, policy: &Value) -> Result<AccessKey> {
        self.iam("CreateUser", &[("UserName", name)]).await?;
        let xml = self.iam("CreateAccessKey", &[("UserName", name)]).await?;
        let key = AccessKey {
            id: xml_text(&xml, "AccessKeyId")?,
            secret: xml_text(&xml, "SecretAccessKey")?,
        };
        let doc = policy.to_string();
        self.iam(
            "PutUserPolicy",
            &[
                ("UserName", name),
                ("PolicyName", "bench"),
                ("PolicyDocument", &doc),
            ],
        )
        .await?;
        Ok(key)
    }
}

/// The text of the first `<tag>...</tag>` element (IAM answers are small and flat enough).
fn xml_text(xml: &str, tag: &str) -> Result<String> {
    let open = format!("<{tag}>");
    let start = xml
        .find(&open)
        .ok_or_else(|| BenchError::Verify(format!("IAM answer without <{tag}>")))?
        + open.len();
    let end = xml[start..]
        .find(&format!("</{tag}>"))
        .ok_or_else(|| BenchError::Verify(format!("IAM answer with an unclosed <{tag}>")))?;
    Ok(xml[start..start + end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_element_text() {
        let xml = "<R><AccessKey><AccessKeyId>AKIA1</AccessKeyId><SecretAccessKey>s/+x&amp;y</SecretAccessKey></AccessKey></R>";
        assert_eq!(xml_text(xml, "AccessKeyId").unwrap(), "AKIA1");
        assert_eq!(xml_text(xml, "SecretAccessKey").unwrap(), "s/+x&y");
        assert!(xml_text(xml, "UserName").is_err());
    }
}
