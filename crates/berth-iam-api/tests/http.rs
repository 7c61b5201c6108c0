//! In-process tests of the Query edge: requests signed with berth-sigv4's client-side
//! signer (form bodies as botocore sends them, and a GET with the parameters in the query
//! string), sent through the router, against the SQLite IAM store.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use berth_iam_api::{IamApiConfig, IamApiState};
use berth_meta::iam::{Account, KeyOwner, NewAccessKey, NewUser};
use berth_meta::secrets::MasterKey;
use berth_meta::sqlite::{SqliteIamStore, SqliteMetaStore};
use berth_meta::IamStore;
use berth_sigv4::{sign_request, Credentials, PayloadHash};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "eu-west-3";
const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

struct Env {
    _dir: tempfile::TempDir,
    app: axum::Router,
    root: NewAccessKey,
    alice: NewAccessKey,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let meta = SqliteMetaStore::open(dir.path().join("meta.db")).unwrap();
    let iam = Arc::new(SqliteIamStore::new(meta, MasterKey::generate()));
    let root = NewAccessKey::generate();
    iam.create_account(
        &Account {
            id: ACCOUNT.into(),
            alias: None,
            created_ms: 1_365_626_846_000,
        },
        Some(&root),
    )
    .await
    .unwrap();
    iam.create_user(&NewUser {
        account_id: ACCOUNT.into(),
        name: "alice".into(),
        path: "/".into(),
        arn: berth_iam::iam_user_arn(ACCOUNT, "/", "alice"),
    })
    .await
    .unwrap();
    let alice = NewAccessKey::generate();
    iam.create_access_key(ACCOUNT, &KeyOwner::User("alice".into()), &alice)
        .await
        .unwrap();
    let state = IamApiState::new(iam, IamApiConfig::new(REGION));
    Env {
        _dir: dir,
        app: berth_iam_api::router(state),
        root,
        alice,
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A POST signed as botocore signs it: for `service` in `region`.
fn signed_post(key: &NewAccessKey, body: &str, service: &str, region: &str) -> Request<Body> {
    let req = berth_sigv4::Request::new("POST", "/", "", PayloadHash::of_body(body.as_bytes()))
        .with_header("host", "iam.test:5000")
        .with_header("content-type", FORM);
    let creds = Credentials {
        access_key_id: &key.access_key_id,
        secret_access_key: key.secret.expose(),
        session_token: None,
    };
    let sig = sign_request(
        &req,
        &creds,
        region,
        service,
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let mut b = Request::post("/")
        .header("host", "iam.test:5000")
        .header("content-type", FORM);
    for (n, v) in sig.headers() {
        b = b.header(n, v);
    }
    b.body(Body::from(body.to_string())).unwrap()
}

async fn send(env: &Env, req: Request<Body>) -> (StatusCode, String) {
    let resp = env.app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    assert_eq!(resp.headers()["content-type"], "text/xml");
    let id = resp.headers()["x-amzn-requestid"]
        .to_str()
        .unwrap()
        .to_string();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(
        text.contains(&format!("<RequestId>{id}</RequestId>")),
        "{text}"
    );
    (status, text)
}

async fn iam(
    env: &Env,
    key: &NewAccessKey,
    action: &str,
    params: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut pairs = vec![("Action", action), ("Version", "2010-05-08")];
    pairs.extend_from_slice(params);
    send(env, signed_post(key, &form(&pairs), "iam", "us-east-1")).await
}

fn code(xml: &str) -> &str {
    let start = xml.find("<Code>").map(|i| i + 6).unwrap_or(0);
    let end = xml[start..]
        .find("</Code>")
        .map(|i| start + i)
        .unwrap_or(start);
    &xml[start..end]
}

#[tokio::test]
async fn create_get_and_list_users_in_model_shapes() {
    let env = env().await;
    let (s, xml) = iam(
        &env,
        &env.root,
        "CreateUser",
        &[("UserName", "bob"), ("Path", "/ci/")],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{xml}");
    assert!(xml.starts_with(
        "<CreateUserResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><CreateUserResult><User><Path>/ci/</Path><UserName>bob</UserName><UserId>AIDA"
    ), "{xml}");
    assert!(xml.contains(&format!("<Arn>arn:aws:iam::{ACCOUNT}:user/ci/bob</Arn>")));
    let (s, xml) = iam(&env, &env.root, "CreateUser", &[("UserName", "BOB")]).await;
    assert_eq!(
        (s, code(&xml)),
        (StatusCode::CONFLICT, "EntityAlreadyExists"),
        "{xml}"
    );
    assert!(xml.contains("<Type>Sender</Type>"));

    // The root asking about itself.
    let (s, xml) = iam(&env, &env.root, "GetUser", &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert!(xml.contains(&format!(
        "<User><UserId>{ACCOUNT}</UserId><Arn>arn:aws:iam::{ACCOUNT}:root</Arn><CreateDate>2013-04-10T20:47:26Z</CreateDate></User>"
    )), "{xml}");

    // Pages of one.
    let (_, xml) = iam(&env, &env.root, "ListUsers", &[("MaxItems", "1")]).await;
    assert!(xml.contains("<UserName>alice</UserName>"), "{xml}");
    assert!(
        xml.contains("<IsTruncated>true</IsTruncated><Marker>bob</Marker>"),
        "{xml}"
    );
    let (_, xml) = iam(
        &env,
        &env.root,
        "ListUsers",
        &[("MaxItems", "1"), ("Marker", "bob")],
    )
    .await;
    assert!(
        xml.contains("<UserName>bob</UserName>") && !xml.contains("alice"),
        "{xml}"
    );
    assert!(
        xml.contains("<IsTruncated>false</IsTruncated></ListUsersResult>"),
        "{xml}"
    );
    let (_, xml) = iam(&env, &env.root, "ListUsers", &[("PathPrefix", "/ci/")]).await;
    assert!(xml.contains("bob") && !xml.contains("alice"), "{xml}");

    let (s, xml) = iam(&env, &env.root, "GetUser", &[("UserName", "nobody")]).await;
    assert_eq!(
        (s, code(&xml)),
        (StatusCode::NOT_FOUND, "NoSuchEntity"),
        "{xml}"
    );
    let (s, xml) = iam(&env, &env.root, "CreateUser", &[("UserName", "a<b")]).await;
    assert_eq!(
        (s, code(&xml)),
        (StatusCode::BAD_REQUEST, "ValidationError"),
        "{xml}"
    );
    // The value is escaped in the message.
    assert!(
        xml.contains("Value &apos;a&lt;b&apos; at &apos;userName&apos;"),
        "{xml}"
    );
}

#[tokio::test]
async fn policies_are_validated_stored_encoded_and_enforced() {
    let env = env().await;
    let (s, xml) = iam(&env, &env.alice, "ListUsers", &[]).await;
    assert_eq!(
        (s, code(&xml)),
        (StatusCode::FORBIDDEN, "AccessDenied"),
        "{xml}"
    );
    assert!(xml.contains("iam:ListUsers"), "{xml}");

    let bad = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:*","Resource":"*","Principal":"*"}]}"#;
    let (s, xml) = iam(
        &env,
        &env.root,
        "PutUserPolicy",
        &[
            ("UserName", "alice"),
            ("PolicyName", "p"),
            ("PolicyDocument", bad),
        ],
    )
    .await;
    assert_eq!(
        (s, code(&xml)),
        (StatusCode::BAD_REQUEST, "MalformedPolicyDocument"),
        "{xml}"
    );

    let doc = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:ListUsers", "Resource": "*"}]}"#;
    let (s, xml) = iam(
        &env,
        &env.root,
        "PutUserPolicy",
        &[
            ("UserName", "alice"),
            ("PolicyName", "list"),
            ("PolicyDocument", doc),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{xml}");
    let (s, xml) = iam(&env, &env.alice, "ListUsers", &[]).await;
    assert_eq!(s, StatusCode::OK, "{xml}");

    let (_, xml) = iam(
        &env,
        &env.root,
        "GetUserPolicy",
        &[("UserName", "alice"), ("PolicyName", "list")],
    )
    .await;
    let start = xml.find("<PolicyDocument>").unwrap() + "<PolicyDocument>".len();
    let end = xml.find("</PolicyDocument>").unwrap();
    let encoded = &xml[start..end];
    assert!(
        !encoded.contains(' ') && !encoded.contains('"'),
        "{encoded}"
    );
    assert_eq!(berth_sigv4::percent_decode(encoded), doc.as_bytes());

    // The quota is on the sum of the user's inline policies.
    let resources: Vec<String> = (0..30)
        .map(|i| format!("\"arn:aws:ecr:*:*:repository/r{i:03}/*\""))
        .collect();
    let big = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"ecr:*","Resource":[{}]}}]}}"#,
        resources.join(",")
    );
    let (s, xml) = iam(
        &env,
        &env.root,
        "PutUserPolicy",
        &[
            ("UserName", "alice"),
            ("PolicyName", "big1"),
            ("PolicyDocument", &big),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{xml}");
    let (s, xml) = iam(
        &env,
        &env.root,
        "PutUserPolicy",
        &[
            ("UserName", "alice"),
            ("PolicyName", "big2"),
            ("PolicyDocument", &big),
        ],
    )
    .await;
    assert_eq!(
        (s, code(&xml)),
        (StatusCode::CONFLICT, "LimitExceeded"),
        "{xml}"
    );
    assert!(
        xml.contains("Maximum policy size of 2048 bytes exceeded for user alice"),
        "{xml}"
    );
    // Replacing a policy does not count its old text.
    let (s, xml) = iam(
        &env,
        &env.root,
        "PutUserPolicy",
        &[
            ("UserName", "alice"),
            ("PolicyName", "big1"),
            ("PolicyDocument", &big),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{xml}");

    let (_, xml) = iam(
        &env,
        &env.root,
        "ListUserPolicies",
        &[("UserName", "alice")],
    )
    .await;
    assert!(xml.contains("<PolicyNames><member>big1</member><member>list</member></PolicyNames><IsTruncated>false</IsTruncated>"), "{xml}");
    let (s, xml) = iam(&env, &env.root, "DeleteUser", &[("UserName", "alice")]).await;
    assert_eq!(
        (s, code(&xml)),
        (StatusCode::CONFLICT, "DeleteConflict"),
        "{xml}"
    );
}

#[tokio::test]
async fn framing_signing_and_sts() {
    let env = env().await;
    // STS, signed for sts in the configured region.
    let body = form(&[("Action", "GetCallerIdentity"), ("Version", "2011-06-15")]);
    let (s, xml) = send(&env, signed_post(&env.alice, &body, "sts", REGION)).await;
    assert_eq!(s, StatusCode::OK, "{xml}");
    assert!(xml.starts_with("<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult><UserId>AIDA"), "{xml}");
    assert!(xml.contains(&format!("<Arn>arn:aws:iam::{ACCOUNT}:user/alice</Arn>")));
    // An STS request signed for iam is refused.
    let (s, xml) = send(&env, signed_post(&env.alice, &body, "iam", "us-east-1")).await;
    assert_eq!(
        (s, code(&xml)),
        (StatusCode::FORBIDDEN, "SignatureDoesNotMatch"),
        "{xml}"
    );
    assert!(xml.contains("sts.amazonaws.com"), "{xml}");
    // A region the server does not serve.
    let (s, xml) = send(&env, signed_post(&env.alice, &body, "sts", "ap-south-1")).await;
    assert_eq!(
        (s, code(&xml)),
        (StatusCode::FORBIDDEN, "SignatureDoesNotMatch"),
        "{xml}"
    );
    // A tampered body.
    let mut req = signed_post(&env.alice, &body, "sts", REGION);
    *req.body_mut() = Body::from(body.replace("2011-06-15", "2011-06-15&X=1"));
    let (s, xml) = send(&env, req).await;
    assert_eq!(
        (s, code(&xml)),
        (StatusCode::FORBIDDEN, "SignatureDoesNotMatch"),
        "{xml}"
    );
    // Unknown key.
    let stranger = NewAccessKey::generate();
    let (s, xml) = send(&env, signed_post(&stranger, &body, "sts", REGION)).await;
    assert_eq!(
        (s, code(&xml)),
        (StatusCode::FORBIDDEN, "InvalidClientTokenId"),
        "{xml}"
    );
    // Unsigned.
    let req = Request::post("/")
        .header("content-type", FORM)
        .body(Body::from(body.clone()))
        .unwrap();
    let (s, xml) = send(&env, req).await;
    assert_eq!(
        (s, code(&xml)),
        (StatusCode::FORBIDDEN, "MissingAuthenticationToken"),
        "{xml}"
    );
    // No action, an unknown action, the other service's version.
    let (s, xml) = send(
        &env,
        signed_post(&env.root, "Version=2010-05-08", "iam", "us-east-1"),
    )
    .await;
    assert_eq!(
        (s, code(&xml)),
        (StatusCode::BAD_REQUEST, "MissingAction"),
        "{xml}"
    );
    let (s, xml) = iam(&env, &env.root, "ListRoles", &[]).await;
    assert_eq!(
        (s, code(&xml)),
        (StatusCode::BAD_REQUEST, "InvalidAction"),
        "{xml}"
    );
    let body = form(&[
        ("Action", "CreateUser"),
        ("Version", "2011-06-15"),
        ("UserName", "x"),
    ]);
    let (s, xml) = send(&env, signed_post(&env.root, &body, "iam", "us-east-1")).await;
    assert_eq!(
        (s, code(&xml)),
        (StatusCode::BAD_REQUEST, "InvalidAction"),
        "{xml}"
    );

    // A GET with the parameters in the (signed) query string.
    let query = "Action=GetCallerIdentity&Version=2011-06-15";
    let sreq = berth_sigv4::Request::new("GET", "/", query, PayloadHash::of_body(b""))
        .with_header("host", "iam.test:5000");
    let creds = Credentials {
        access_key_id: &env.root.access_key_id,
        secret_access_key: env.root.secret.expose(),
        session_token: None,
    };
    let sig = sign_request(
        &sreq,
        &creds,
        REGION,
        "sts",
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let mut b = Request::get(format!("/?{query}")).header("host", "iam.test:5000");
    for (n, v) in sig.headers() {
        b = b.header(n, v);
    }
    let (s, xml) = send(&env, b.body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK, "{xml}");
    assert!(xml.contains(&format!("<UserId>{ACCOUNT}</UserId><Account>{ACCOUNT}</Account><Arn>arn:aws:iam::{ACCOUNT}:root</Arn>")), "{xml}");
}

#[tokio::test]
async fn access_keys_and_groups() {
    let env = env().await;
    // Alice manages her own keys once allowed to.
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:*AccessKey*"],"Resource":"arn:aws:iam::123456789012:user/alice"}]}"#;
    let (s, _) = iam(
        &env,
        &env.root,
        "PutUserPolicy",
        &[
            ("UserName", "alice"),
            ("PolicyName", "keys"),
            ("PolicyDocument", doc),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, xml) = iam(&env, &env.alice, "CreateAccessKey", &[]).await;
    assert_eq!(s, StatusCode::OK, "{xml}");
    assert!(
        xml.contains("<AccessKey><UserName>alice</UserName><AccessKeyId>AKIA"),
        "{xml}"
    );
    assert!(
        xml.contains("<Status>Active</Status><SecretAccessKey>"),
        "{xml}"
    );
    let (s, xml) = iam(&env, &env.alice, "CreateAccessKey", &[]).await;
    assert_eq!(
        (s, code(&xml)),
        (StatusCode::CONFLICT, "LimitExceeded"),
        "{xml}"
    );
    let (_, xml) = iam(&env, &env.alice, "ListAccessKeys", &[]).await;
    assert_eq!(
        xml.matches("<member><UserName>alice</UserName>").count(),
        2,
        "{xml}"
    );
    assert!(!xml.contains("SecretAccessKey"), "{xml}");
    // Bob's keys are not hers to touch.
    let (s, _) = iam(&env, &env.root, "CreateUser", &[("UserName", "bob")]).await;
    assert_eq!(s, StatusCode::OK);
    let (s, xml) = iam(&env, &env.alice, "ListAccessKeys", &[("UserName", "bob")]).await;
    assert_eq!(
        (s, code(&xml)),
        (StatusCode::FORBIDDEN, "AccessDenied"),
        "{xml}"
    );
    // Nor can she learn whether a user exists.
    let (s, xml) = iam(
        &env,
        &env.alice,
        "ListAccessKeys",
        &[("UserName", "nobody")],
    )
    .await;
    assert_eq!(
        (s, code(&xml)),
        (StatusCode::FORBIDDEN, "AccessDenied"),
        "{xml}"
    );
    // Deactivating her signing key locks her out at once.
    let id = env.alice.access_key_id.as_str();
    let (s, xml) = iam(
        &env,
        &env.root,
        "UpdateAccessKey",
        &[
            ("UserName", "alice"),
            ("AccessKeyId", id),
            ("Status", "Inactive"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{xml}");
    let (s, xml) = iam(&env, &env.alice, "ListAccessKeys", &[]).await;
    assert_eq!(
        (s, code(&xml)),
        (StatusCode::FORBIDDEN, "InvalidClientTokenId"),
        "{xml}"
    );
    let (s, xml) = iam(
        &env,
        &env.root,
        "UpdateAccessKey",
        &[
            ("UserName", "bob"),
            ("AccessKeyId", id),
            ("Status", "Active"),
        ],
    )
    .await;
    assert_eq!(
        (s, code(&xml)),
        (StatusCode::NOT_FOUND, "NoSuchEntity"),
        "{xml}"
    );

    // Groups and membership.
    let (s, xml) = iam(
        &env,
        &env.root,
        "CreateGroup",
        &[("GroupName", "devs"), ("Path", "/eng/")],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{xml}");
    assert!(
        xml.contains("<Group><Path>/eng/</Path><GroupName>devs</GroupName><GroupId>AGPA"),
        "{xml}"
    );
    for u in ["alice", "bob"] {
        let (s, xml) = iam(
            &env,
            &env.root,
            "AddUserToGroup",
            &[("GroupName", "devs"), ("UserName", u)],
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{xml}");
    }
    let (_, xml) = iam(
        &env,
        &env.root,
        "GetGroup",
        &[("GroupName", "devs"), ("MaxItems", "1")],
    )
    .await;
    assert!(
        xml.contains("<Users><member><Path>/</Path><UserName>alice</UserName>"),
        "{xml}"
    );
    assert!(
        xml.contains("<IsTruncated>true</IsTruncated><Marker>bob</Marker>"),
        "{xml}"
    );
    let (_, xml) = iam(&env, &env.root, "ListGroupsForUser", &[("UserName", "bob")]).await;
    assert!(
        xml.contains("<Groups><member><Path>/eng/</Path><GroupName>devs</GroupName>"),
        "{xml}"
    );
    let (s, xml) = iam(
        &env,
        &env.root,
        "RemoveUserFromGroup",
        &[("GroupName", "devs"), ("UserName", "bob")],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{xml}");
    let (s, xml) = iam(
        &env,
        &env.root,
        "RemoveUserFromGroup",
        &[("GroupName", "devs"), ("UserName", "bob")],
    )
    .await;
    assert_eq!(
        (s, code(&xml)),
        (StatusCode::NOT_FOUND, "NoSuchEntity"),
        "{xml}"
    );
    let (s, xml) = iam(&env, &env.root, "GetGroup", &[("GroupName", "nope")]).await;
    assert_eq!(
        (s, code(&xml)),
        (StatusCode::NOT_FOUND, "NoSuchEntity"),
        "{xml}"
    );
    let (s, _) = iam(&env, &env.root, "DeleteUser", &[("UserName", "bob")]).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn presigned_get_and_oversize_bodies() {
    let env = env().await;
    // A presigned GET: the signature and the parameters share the query string.
    let params = "Action=GetUser&Version=2010-05-08&UserName=alice";
    let sreq = berth_sigv4::Request::new("GET", "/", params, PayloadHash::of_body(b""))
        .with_header("host", "iam.test:5000");
    let creds = Credentials {
        access_key_id: &env.root.access_key_id,
        secret_access_key: env.root.secret.expose(),
        session_token: None,
    };
    let query = berth_sigv4::presign(
        &sreq,
        &creds,
        "us-east-1",
        "iam",
        time::OffsetDateTime::now_utc(),
        60,
    )
    .unwrap();
    let req = Request::get(format!("/?{query}"))
        .header("host", "iam.test:5000")
        .body(Body::empty())
        .unwrap();
    let (s, xml) = send(&env, req).await;
    assert_eq!(s, StatusCode::OK, "{xml}");
    assert!(
        xml.contains("<GetUserResult><User><Path>/</Path><UserName>alice</UserName>"),
        "{xml}"
    );
    // The same URL with another user named is a different request.
    let req = Request::get(format!(
        "/?{}",
        query.replace("UserName=alice", "UserName=bob")
    ))
    .header("host", "iam.test:5000")
    .body(Body::empty())
    .unwrap();
    let (s, xml) = send(&env, req).await;
    assert_eq!(
        (s, code(&xml)),
        (StatusCode::FORBIDDEN, "SignatureDoesNotMatch"),
        "{xml}"
    );

    // Bodies beyond the limit are refused before anything else is done with them.
    let body = format!(
        "Action=ListUsers&Version=2010-05-08&Pad={}",
        "a".repeat(berth_iam_api::MAX_BODY)
    );
    let req = Request::post("/")
        .header("content-type", FORM)
        .body(Body::from(body))
        .unwrap();
    let (s, xml) = send(&env, req).await;
    assert_eq!(
        (s, code(&xml)),
        (StatusCode::PAYLOAD_TOO_LARGE, "ValidationError"),
        "{xml}"
    );
}

/// The parameters of `op` in the generated test, naming entities that need not exist
/// (authorization comes before the lookup). No wildcard: a new operation does not compile
/// without a row.
fn row(op: berth_iam_api::IamOperation) -> Vec<(&'static str, &'static str)> {
    use berth_iam_api::IamOperation as O;
    const DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:ListImages","Resource":"*"}]}"#;
    const KEY: &str = "AKIAIOSFODNN7EXAMPLE";
    let (u, g, p) = (
        ("UserName", "u1"),
        ("GroupName", "g1"),
        ("PolicyName", "p1"),
    );
    match op {
        O::AddUserToGroup | O::RemoveUserFromGroup => vec![g, u],
        O::CreateAccessKey
        | O::DeleteUser
        | O::GetUser
        | O::ListAccessKeys
        | O::ListGroupsForUser
        | O::ListUserPolicies
        | O::CreateUser => vec![u],
        O::CreateGroup | O::GetGroup | O::ListGroupPolicies => vec![g],
        O::DeleteAccessKey => vec![u, ("AccessKeyId", KEY)],
        O::UpdateAccessKey => vec![u, ("AccessKeyId", KEY), ("Status", "Inactive")],
        O::DeleteGroupPolicy | O::GetGroupPolicy => vec![g, p],
        O::DeleteUserPolicy | O::GetUserPolicy => vec![u, p],
        O::PutGroupPolicy => vec![g, p, ("PolicyDocument", DOC)],
        O::PutUserPolicy => vec![u, p, ("PolicyDocument", DOC)],
        O::ListUsers | O::GetCallerIdentity => vec![],
    }
}

/// The ARN `op` is authorized on with the parameters of [`row`]: `u1` and `g1` as they
/// are once created under `/ci/` and `/eng/` (`existing`), or with path `/` while they do
/// not exist; `None` when no permission is needed. No wildcard either.
fn resolved_arn(op: berth_iam_api::IamOperation, existing: bool) -> Option<String> {
    use berth_iam_api::IamOperation as O;
    let (user, group) = if existing {
        ("user/ci/u1", "group/eng/g1")
    } else {
        ("user/u1", "group/g1")
    };
    let resource = match op {
        O::GetCallerIdentity => return None,
        // The path prefix of ListUsers (none: `/`).
        O::ListUsers => "user/",
        // Created without a Path, at `/`.
        O::CreateUser => "user/u1",
        O::CreateGroup => "group/g1",
        O::CreateAccessKey
        | O::DeleteAccessKey
        | O::DeleteUser
        | O::DeleteUserPolicy
        | O::GetUser
        | O::GetUserPolicy
        | O::ListAccessKeys
        | O::ListGroupsForUser
        | O::ListUserPolicies
        | O::PutUserPolicy
        | O::UpdateAccessKey => user,
        O::AddUserToGroup
        | O::DeleteGroupPolicy
        | O::GetGroup
        | O::GetGroupPolicy
        | O::ListGroupPolicies
        | O::PutGroupPolicy
        | O::RemoveUserFromGroup => group,
    };
    Some(format!("arn:aws:iam::{ACCOUNT}:{resource}"))
}

/// Sends `op` with the parameters of [`row`], signed by `key`.
async fn send_row(
    env: &Env,
    key: &NewAccessKey,
    op: berth_iam_api::IamOperation,
) -> (StatusCode, String) {
    use berth_iam_api::Service;
    let mut pairs = vec![("Action", op.name()), ("Version", op.service().version())];
    pairs.extend(row(op));
    let (service, region) = match op.service() {
        Service::Iam => ("iam", "us-east-1"),
        Service::Sts => ("sts", REGION),
    };
    send(env, signed_post(key, &form(&pairs), service, region)).await
}

/// For every IAM and STS operation: a caller without the action is denied (except
/// `sts:GetCallerIdentity`, which needs no permission, as in AWS), on the ARN of a user or
/// group that does not exist built with path `/` (so the denial does not tell whether it
/// exists), and the account root is not (so the denial is the policy's, not a malformed
/// row).
#[tokio::test]
async fn every_iam_and_sts_operation_is_denied_without_permission() {
    use berth_iam_api::IamOperation;
    let env = env().await;
    for &op in IamOperation::ALL {
        let (status, xml) = send_row(&env, &env.alice, op).await;
        match resolved_arn(op, false) {
            None => assert_eq!(status, StatusCode::OK, "{xml}"),
            Some(arn) => {
                assert_eq!(code(&xml), "AccessDenied", "{op:?}: {xml}");
                let denial = format!("perform: {} on resource: {arn}", op.iam_action());
                assert!(xml.contains(&denial), "{op:?}: {xml}");
            }
        }
        let (_, xml) = send_row(&env, &env.root, op).await;
        assert_ne!(code(&xml), "AccessDenied", "{op:?} by root: {xml}");
    }
}

/// Dispatch resolves the user or group an operation names before authorizing: every
/// operation on an existing entity is decided on its ARN with its real path, so a policy
/// on `user/ci/*` allows it, while a name that does not exist stays `AccessDenied` for that
/// caller instead of `NoSuchEntity`.
#[tokio::test]
async fn every_operation_is_authorized_on_the_resolved_path() {
    use berth_iam_api::IamOperation;
    let env = env().await;
    let created = [
        ("CreateUser", [("UserName", "u1"), ("Path", "/ci/")]),
        ("CreateGroup", [("GroupName", "g1"), ("Path", "/eng/")]),
    ];
    for (action, params) in created {
        let (s, xml) = iam(&env, &env.root, action, &params).await;
        assert_eq!(s, StatusCode::OK, "{xml}");
    }
    for &op in IamOperation::ALL {
        let (status, xml) = send_row(&env, &env.alice, op).await;
        match resolved_arn(op, true) {
            None => assert_eq!(status, StatusCode::OK, "{xml}"),
            Some(arn) => {
                assert_eq!(code(&xml), "AccessDenied", "{op:?}: {xml}");
                let denial = format!("perform: {} on resource: {arn}", op.iam_action());
                assert!(xml.contains(&denial), "{op:?}: {xml}");
            }
        }
    }

    let doc = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"iam:*","Resource":["arn:aws:iam::{ACCOUNT}:user/ci/*","arn:aws:iam::{ACCOUNT}:group/eng/*"]}}]}}"#
    );
    let put = [
        ("UserName", "alice"),
        ("PolicyName", "paths"),
        ("PolicyDocument", doc.as_str()),
    ];
    let (s, xml) = iam(&env, &env.root, "PutUserPolicy", &put).await;
    assert_eq!(s, StatusCode::OK, "{xml}");
    for (action, params) in [
        ("GetUser", ("UserName", "u1")),
        ("ListUserPolicies", ("UserName", "u1")),
        ("GetGroup", ("GroupName", "g1")),
        ("ListGroupPolicies", ("GroupName", "g1")),
    ] {
        let (s, xml) = iam(&env, &env.alice, action, &[params]).await;
        assert_eq!(s, StatusCode::OK, "{action}: {xml}");
    }
    for (action, params) in [
        ("GetUser", ("UserName", "nobody")),
        ("GetGroup", ("GroupName", "nogroup")),
    ] {
        let (s, xml) = iam(&env, &env.alice, action, &[params]).await;
        assert_eq!(
            (s, code(&xml)),
            (StatusCode::FORBIDDEN, "AccessDenied"),
            "{action}: {xml}"
        );
        let (s, xml) = iam(&env, &env.root, action, &[params]).await;
        assert_eq!(
            (s, code(&xml)),
            (StatusCode::NOT_FOUND, "NoSuchEntity"),
            "{action}: {xml}"
        );
    }
    // A malformed request is a ValidationError for every caller, checked before the
    // decision (each of these would be denied to alice).
    let malformed: [(&str, &[(&str, &str)]); 3] = [
        (
            "PutGroupPolicy",
            &[("GroupName", "g9"), ("PolicyName", "p")],
        ),
        ("ListUsers", &[("MaxItems", "0")]),
        (
            "UpdateAccessKey",
            &[
                ("AccessKeyId", "AKIAIOSFODNN7EXAMPLE"),
                ("Status", "Paused"),
            ],
        ),
    ];
    for (action, params) in malformed {
        let (s, xml) = iam(&env, &env.alice, action, params).await;
        assert_eq!(
            (s, code(&xml)),
            (StatusCode::BAD_REQUEST, "ValidationError"),
            "{action}: {xml}"
        );
    }
}
