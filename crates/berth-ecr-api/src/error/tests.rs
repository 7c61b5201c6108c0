//! The wire mapping, case by case: every domain error the edge meets lands on its
//! model exception and status, and internal causes never reach the client.

use super::*;
use berth_meta::{MetaError, SettingsError};
use berth_registry::RegistryError;

#[test]
fn client_errors_are_400_with_model_names_and_server_errors_500() {
    let cases: Vec<(EcrError, u16, &str)> = vec![
        (EcrError::UnknownOperation, 400, "UnknownOperationException"),
        (
            EcrError::Serialization("x".into()),
            400,
            "SerializationException",
        ),
        (
            EcrError::InvalidParameter("x".into()),
            400,
            "InvalidParameterException",
        ),
        (
            EcrError::RepositoryAlreadyExists {
                registry: "1".into(),
                name: "a".into(),
            },
            400,
            "RepositoryAlreadyExistsException",
        ),
        (
            EcrError::RepositoryNotFound {
                registry: "1".into(),
                name: "a".into(),
            },
            400,
            "RepositoryNotFoundException",
        ),
        (
            EcrError::RepositoryNotEmpty {
                registry: "1".into(),
                name: "a".into(),
            },
            400,
            "RepositoryNotEmptyException",
        ),
        (
            EcrError::Authentication(SigV4Error::UnrecognizedClient {
                access_key_id: "AKIA".into(),
            }),
            400,
            "UnrecognizedClientException",
        ),
        (
            EcrError::Authentication(SigV4Error::MissingAuthentication),
            400,
            "MissingAuthenticationTokenException",
        ),
        (
            EcrError::AccessDenied("no".into()),
            400,
            "AccessDeniedException",
        ),
        (
            EcrError::Unsupported(EcrOperation::PutImage),
            400,
            "UnsupportedOperationException",
        ),
        (
            EcrError::Throttled {
                retry_after_secs: 1,
            },
            400,
            "ThrottlingException",
        ),
        (EcrError::Internal("boom".into()), 500, "ServerException"),
    ];
    for (e, status, ty) in cases {
        let w = to_wire(&e);
        assert_eq!(w.status.as_u16(), status, "{e:?}");
        assert_eq!(w.aws_type, ty, "{e:?}");
    }
    let w = to_wire(&EcrError::Unsupported(EcrOperation::PutImage));
    assert_eq!(
        w.message,
        "ecr:PutImage is not implemented by this Berth version"
    );
    // The internal cause never reaches the wire.
    assert!(!to_wire(&EcrError::Internal("secret path".into()))
        .message
        .contains("secret"));
    let w = to_wire(&EcrError::RepositoryNotFound {
        registry: "123".into(),
        name: "a/b".into(),
    });
    assert_eq!(
        w.message,
        "The repository with name 'a/b' does not exist in the registry with id '123'"
    );
}

/// The status, `__type` and `Retry-After` seconds an error goes on the wire with.
type Wire = (u16, &'static str, Option<u64>);

fn wire_of(e: &EcrError) -> Wire {
    let w = to_wire(e);
    (w.status.as_u16(), w.aws_type, w.retry_after_secs)
}

/// An internal failure whose text must stay in the log.
fn leaky_source() -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(std::io::Error::other(
        "open /var/lib/berth/meta.db: password=hunter2",
    ))
}

/// Asserts `e` is internal: its cause is kept for the log, and the wire says only that
/// something failed on our side.
fn assert_internal_and_quiet(e: &EcrError) {
    let EcrError::Internal(logged) = e else {
        panic!("not internal: {e:?}");
    };
    assert!(
        logged.contains("hunter2"),
        "the log loses the cause: {logged}"
    );
    let w = to_wire(e);
    assert_eq!((w.status.as_u16(), w.aws_type), (500, "ServerException"));
    assert!(!w.message.contains("hunter2") && !w.message.contains("meta.db"));
    let body = error_body(e, &w).to_string();
    assert!(!body.contains("hunter2"), "{body}");
}

#[test]
fn every_meta_error_has_its_wire_answer() {
    let d = berth_types::Digest::sha256_of(b"x");
    let meta = |e| EcrError::from_meta(e, "123456789012");
    let cases: Vec<(MetaError, Wire)> = vec![
        (
            MetaError::RepositoryNotFound("a".into()),
            (400, "RepositoryNotFoundException", None),
        ),
        (
            MetaError::RepositoryAlreadyExists("a".into()),
            (400, "RepositoryAlreadyExistsException", None),
        ),
        (
            MetaError::RepositoryNotEmpty("a".into()),
            (400, "RepositoryNotEmptyException", None),
        ),
        (
            MetaError::BlobNotLinked(d.clone()),
            (400, "LayersNotFoundException", None),
        ),
        (
            MetaError::BlobReferenced {
                digest: d.clone(),
                manifest: d.clone(),
            },
            (400, "InvalidParameterException", None),
        ),
        (
            MetaError::ChildManifestMissing(d.clone()),
            (400, "ReferencedImagesNotFoundException", None),
        ),
        (
            MetaError::ManifestReferenced {
                digest: d.clone(),
                index: d.clone(),
            },
            (400, "InvalidParameterException", None),
        ),
        (
            MetaError::UploadNotFound("u".into()),
            (400, "UploadNotFoundException", None),
        ),
        (
            MetaError::TagImmutable {
                repository: "a".into(),
                tag: "v1".into(),
            },
            (400, "ImageTagAlreadyExistsException", None),
        ),
        // Retryable: a later garbage collection pass finishes the deletion.
        (
            MetaError::BlobBeingDeleted(d.clone()),
            (503, "ServerException", Some(60)),
        ),
        (MetaError::StorageFull, (500, "ServerException", None)),
    ];
    for (e, expected) in cases {
        let shown = format!("{e:?}");
        assert_eq!(wire_of(&meta(e)), expected, "{shown}");
    }
    let w = to_wire(&meta(MetaError::TagImmutable {
        repository: "a".into(),
        tag: "v1".into(),
    }));
    assert_eq!(w.message, "The image tag 'v1' already exists in the 'a' repository and cannot be overwritten because the repository is immutable.");
    let w = to_wire(&meta(MetaError::BlobBeingDeleted(d.clone())));
    assert!(w.message.contains("retry"), "{}", w.message);
    assert_eq!(
        to_wire(&meta(MetaError::StorageFull)).message,
        "The registry's storage is full; nothing was written."
    );
    assert_internal_and_quiet(&meta(MetaError::Database(leaky_source())));
}

#[test]
fn access_errors_keep_store_failures_off_the_wire() {
    use berth_access::AccessError;
    let e: EcrError = AccessError::AccessDenied("no".into()).into();
    assert_eq!(wire_of(&e), (400, "AccessDeniedException", None));
    let e: EcrError = AccessError::Authentication(SigV4Error::MissingAuthentication).into();
    assert_eq!(
        wire_of(&e),
        (400, "MissingAuthenticationTokenException", None)
    );
    let e: EcrError = AccessError::Store {
        context: "reading the access key",
        source: leaky_source(),
    }
    .into();
    assert_internal_and_quiet(&e);
    let source = berth_iam::Policy::parse(
        "not json",
        berth_iam::PolicyKind::Resource,
        berth_iam::SizeLimit::Unlimited,
    )
    .unwrap_err();
    let e: EcrError = AccessError::StoredPolicy {
        name: "repository policy of a".into(),
        source,
    }
    .into();
    let EcrError::Internal(logged) = &e else {
        panic!("not internal: {e:?}");
    };
    assert!(
        logged.contains("repository policy of a does not parse"),
        "{logged}"
    );
    assert_eq!(wire_of(&e), (500, "ServerException", None));
}

#[test]
fn retryable_and_storage_errors_are_server_exceptions() {
    let e = EcrError::Unavailable {
        message: "wait".into(),
        retry_after_secs: 60,
    };
    assert_eq!(wire_of(&e), (503, "ServerException", Some(60)));
    assert_eq!(to_wire(&e).message, "wait");
    assert_eq!(
        wire_of(&EcrError::Throttled {
            retry_after_secs: 3
        }),
        (400, "ThrottlingException", Some(3))
    );
    assert_eq!(
        wire_of(&EcrError::StorageFull),
        (500, "ServerException", None)
    );
    assert_eq!(
        wire_of(&EcrError::Internal("x".into())),
        (500, "ServerException", None)
    );
}

#[test]
fn settings_errors_map_to_the_model_exceptions() {
    let cases: Vec<(SettingsError, &str)> = vec![
        (
            SettingsError::RepositoryNotFound("a".into()),
            "RepositoryNotFoundException",
        ),
        (
            SettingsError::RepositoryPolicyNotFound("a".into()),
            "RepositoryPolicyNotFoundException",
        ),
        (
            SettingsError::RegistryPolicyNotFound("1".into()),
            "RegistryPolicyNotFoundException",
        ),
        (
            SettingsError::TooManyTags {
                repository: "a".into(),
                count: 51,
            },
            "TooManyTagsException",
        ),
        (
            SettingsError::TemplateAlreadyExists("p".into()),
            "TemplateAlreadyExistsException",
        ),
        (
            SettingsError::TemplateNotFound("p".into()),
            "TemplateNotFoundException",
        ),
        (
            SettingsError::Meta(berth_meta::MetaError::StorageFull),
            "ServerException",
        ),
    ];
    for (e, ty) in cases {
        let w = to_wire(&EcrError::from_settings(e, "123456789012"));
        assert_eq!(w.aws_type, ty);
        assert_eq!(
            w.status.as_u16(),
            if ty == "ServerException" { 500 } else { 400 }
        );
    }
    let w = to_wire(&EcrError::from_settings(
        SettingsError::RepositoryPolicyNotFound("team/app".into()),
        "123456789012",
    ));
    assert_eq!(w.message, "Repository policy does not exist for the repository with name 'team/app' in the registry with id '123456789012'");
    assert_eq!(
        to_wire(&EcrError::InvalidTagParameter("k".into())).aws_type,
        "InvalidTagParameterException"
    );
}

#[test]
fn image_and_layer_errors_map_to_the_model_exceptions() {
    let d = berth_types::Digest::sha256_of(b"x");
    let reg = |e| EcrError::from_registry(e, "1", "a");
    let cases: Vec<(EcrError, &str)> = vec![
        (
            reg(RegistryError::TagImmutable {
                repository: "a".into(),
                tag: "v1".into(),
            }),
            "ImageTagAlreadyExistsException",
        ),
        (
            reg(RegistryError::ManifestBlobUnknown(d.clone())),
            "LayersNotFoundException",
        ),
        (
            reg(RegistryError::ManifestChildUnknown(d.clone())),
            "ReferencedImagesNotFoundException",
        ),
        (
            reg(RegistryError::DigestMismatch {
                expected: d.clone(),
                actual: d.clone(),
            }),
            "ImageDigestDoesNotMatchException",
        ),
        (
            reg(RegistryError::UploadNotFound("u".into())),
            "UploadNotFoundException",
        ),
        (
            reg(RegistryError::RepositoryNotFound("a".into())),
            "RepositoryNotFoundException",
        ),
        (reg(RegistryError::StorageFull), "ServerException"),
        (EcrError::EmptyUpload("x".into()), "EmptyUploadException"),
        (
            EcrError::LayerAlreadyExists("x".into()),
            "LayerAlreadyExistsException",
        ),
        (EcrError::InvalidLayer("x".into()), "InvalidLayerException"),
        (
            EcrError::ExclusionNotFound("x".into()),
            "ExclusionNotFoundException",
        ),
        (
            EcrError::LimitExceeded("x".into()),
            "LimitExceededException",
        ),
    ];
    for (e, ty) in cases {
        let w = to_wire(&e);
        assert_eq!(w.aws_type, ty, "{e:?}");
        let status = if ty == "ServerException" { 500 } else { 400 };
        assert_eq!(w.status.as_u16(), status);
    }
    let d2 = berth_types::Digest::sha256_of(b"y");
    assert_eq!(
        wire_of(&reg(RegistryError::BlobBeingDeleted(d2))),
        (503, "ServerException", Some(60))
    );
    assert_eq!(
        wire_of(&reg(RegistryError::StorageFull)),
        (500, "ServerException", None)
    );
    assert_internal_and_quiet(&reg(RegistryError::Internal(leaky_source())));
    let part = EcrError::InvalidLayerPart {
        registry: "123456789012".into(),
        repository: "a/b".into(),
        upload_id: "u".into(),
        last_valid_byte_received: Some(99),
        message: "m".into(),
    };
    let body = error_body(&part, &to_wire(&part));
    assert_eq!(body["__type"], "InvalidLayerPartException");
    assert_eq!(body["lastValidByteReceived"], 99);
    assert_eq!(body["uploadId"], "u");
    let plain = EcrError::ImageNotFound("gone".into());
    assert_eq!(
        error_body(&plain, &to_wire(&plain)),
        serde_json::json!({"__type": "ImageNotFoundException", "message": "gone"})
    );
}
