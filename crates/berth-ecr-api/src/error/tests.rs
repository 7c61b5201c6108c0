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

#[test]
fn meta_errors_map_to_repository_exceptions() {
    assert!(matches!(
        EcrError::from_meta(MetaError::RepositoryNotEmpty("a".into()), "1"),
        EcrError::RepositoryNotEmpty { .. }
    ));
    assert!(matches!(
        EcrError::from_meta(MetaError::StorageFull, "1"),
        EcrError::Internal(_)
    ));
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
