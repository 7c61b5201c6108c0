use super::*;

#[test]
fn scopes_follow_the_operation() {
    assert_eq!(scope_of(OciOperation::ApiVersion, ""), None);
    assert_eq!(
        scope_of(OciOperation::GetManifest, "a/b").as_deref(),
        Some("repository:a/b:pull")
    );
    assert_eq!(
        scope_of(OciOperation::PatchUpload, "a").as_deref(),
        Some("repository:a:pull,push")
    );
    assert_eq!(
        scope_of(OciOperation::DeleteManifest, "a").as_deref(),
        Some("repository:a:delete")
    );
    assert_eq!(
        scope_of(OciOperation::Catalog, "").as_deref(),
        Some("registry:catalog:*")
    );
}

#[test]
fn access_errors_refuse_or_fail_without_their_cause() {
    use berth_sigv4::SigV4Error;
    let store = || AccessError::Store {
        context: "reading the access key",
        source: Box::new(std::io::Error::other("password=hunter2")),
    };
    let Refusal(m) = AccessError::AccessDenied("denied: x".into()).into();
    assert_eq!(m, "denied: x");
    let Refusal(m) = AccessError::Authentication(SigV4Error::MissingAuthentication).into();
    assert!(!m.is_empty());
    let Refusal(m) = store().into();
    assert_eq!(m, "the credentials could not be checked; try again");
    let code = |r: Response| {
        let c = r
            .extensions()
            .get::<berth_types::telemetry::ErrorCode>()
            .map(|c| c.0);
        (r.status().as_u16(), c)
    };
    assert_eq!(
        code(denied(AccessError::AccessDenied("no".into()))),
        (403, Some("DENIED"))
    );
    assert_eq!(code(denied(store())), (500, Some("UNKNOWN")));
    assert_eq!(
        code(denied(AccessError::Authentication(
            SigV4Error::MissingAuthentication
        ))),
        (500, Some("UNKNOWN"))
    );
}

#[test]
fn mount_parameters_are_dropped_and_others_kept() {
    let uri: http::Uri = "/v2/a/blobs/uploads/?mount=sha256%3Aab&from=b%2Fc&digest=sha256%3Acd"
        .parse()
        .unwrap();
    let out = without_mount(&uri).unwrap();
    assert_eq!(out.path(), "/v2/a/blobs/uploads/");
    assert_eq!(out.query(), Some("digest=sha256%3Acd"));
    let uri: http::Uri = "/v2/a/blobs/uploads/?mount=x&from=y".parse().unwrap();
    assert_eq!(without_mount(&uri).unwrap().query(), None);
}
