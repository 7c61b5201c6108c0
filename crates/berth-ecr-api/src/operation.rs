//! `X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.<Action>` → [`EcrOperation`].
//!
//! The list is every operation of the botocore model `ecr/2015-09-21/service-2.json`
//! (58 in the model this was written against); a test checks it against the model when
//! botocore is installed.

use crate::error::EcrError;

/// The JSON 1.1 target prefix of the ECR API.
pub const TARGET_PREFIX: &str = "AmazonEC2ContainerRegistry_V20150921";

macro_rules! operations {
    ($($op:ident),* $(,)?) => {
        /// One ECR API action.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EcrOperation {
            $($op),*
        }

        impl EcrOperation {
            /// Every action of the model, in the model's (alphabetical) order.
            pub const ALL: &'static [EcrOperation] = &[$(EcrOperation::$op),*];

            /// The action name as in the target header (`CreateRepository`).
            pub fn name(self) -> &'static str {
                match self {
                    $(EcrOperation::$op => stringify!($op)),*
                }
            }

            /// The IAM action that authorizes it (`ecr:CreateRepository`).
            pub fn iam_action(self) -> &'static str {
                match self {
                    $(EcrOperation::$op => concat!("ecr:", stringify!($op))),*
                }
            }

            /// The action named `name` (case-sensitive, as AWS).
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $(stringify!($op) => Some(EcrOperation::$op),)*
                    _ => None,
                }
            }
        }
    };
}

operations! {
    BatchCheckLayerAvailability,
    BatchDeleteImage,
    BatchGetImage,
    BatchGetRepositoryScanningConfiguration,
    CompleteLayerUpload,
    CreatePullThroughCacheRule,
    CreateRepository,
    CreateRepositoryCreationTemplate,
    DeleteLifecyclePolicy,
    DeletePullThroughCacheRule,
    DeleteRegistryPolicy,
    DeleteRepository,
    DeleteRepositoryCreationTemplate,
    DeleteRepositoryPolicy,
    DeleteSigningConfiguration,
    DeregisterPullTimeUpdateExclusion,
    DescribeImageReplicationStatus,
    DescribeImageScanFindings,
    DescribeImageSigningStatus,
    DescribeImages,
    DescribePullThroughCacheRules,
    DescribeRegistry,
    DescribeRepositories,
    DescribeRepositoryCreationTemplates,
    GetAccountSetting,
    GetAuthorizationToken,
    GetDownloadUrlForLayer,
    GetLifecyclePolicy,
    GetLifecyclePolicyPreview,
    GetRegistryPolicy,
    GetRegistryScanningConfiguration,
    GetRepositoryPolicy,
    GetSigningConfiguration,
    InitiateLayerUpload,
    ListImageReferrers,
    ListImages,
    ListPullTimeUpdateExclusions,
    ListTagsForResource,
    PutAccountSetting,
    PutImage,
    PutImageScanningConfiguration,
    PutImageTagMutability,
    PutLifecyclePolicy,
    PutRegistryPolicy,
    PutRegistryScanningConfiguration,
    PutReplicationConfiguration,
    PutSigningConfiguration,
    RegisterPullTimeUpdateExclusion,
    SetRepositoryPolicy,
    StartImageScan,
    StartLifecyclePolicyPreview,
    TagResource,
    UntagResource,
    UpdateImageStorageClass,
    UpdatePullThroughCacheRule,
    UpdateRepositoryCreationTemplate,
    UploadLayerPart,
    ValidatePullThroughCacheRule,
}

impl EcrOperation {
    /// Whether this Berth version implements the action (the others answer
    /// `UnsupportedOperationException`).
    /// Whether a success may change which repository or registry policy, or which tags,
    /// apply to a repository (the authorization caches are dropped after it).
    pub fn changes_resource_policies(self) -> bool {
        matches!(
            self,
            EcrOperation::SetRepositoryPolicy
                | EcrOperation::DeleteRepositoryPolicy
                | EcrOperation::PutRegistryPolicy
                | EcrOperation::DeleteRegistryPolicy
                | EcrOperation::CreateRepository
                | EcrOperation::DeleteRepository
                | EcrOperation::PutImage
                | EcrOperation::InitiateLayerUpload
                // Resource tags are part of the authorization context.
                | EcrOperation::TagResource
                | EcrOperation::UntagResource
        )
    }

    pub fn is_implemented(self) -> bool {
        matches!(
            self,
            EcrOperation::CreateRepository
                | EcrOperation::DescribeRepositories
                | EcrOperation::DeleteRepository
                | EcrOperation::GetAuthorizationToken
                // Images, layers, tag mutability and pull times.
                | EcrOperation::PutImage
                | EcrOperation::BatchGetImage
                | EcrOperation::BatchDeleteImage
                | EcrOperation::DescribeImages
                | EcrOperation::ListImages
                | EcrOperation::ListImageReferrers
                | EcrOperation::BatchCheckLayerAvailability
                | EcrOperation::InitiateLayerUpload
                | EcrOperation::UploadLayerPart
                | EcrOperation::CompleteLayerUpload
                | EcrOperation::GetDownloadUrlForLayer
                | EcrOperation::PutImageTagMutability
                | EcrOperation::RegisterPullTimeUpdateExclusion
                | EcrOperation::DeregisterPullTimeUpdateExclusion
                | EcrOperation::ListPullTimeUpdateExclusions
                // Registry configuration.
                | EcrOperation::SetRepositoryPolicy
                | EcrOperation::GetRepositoryPolicy
                | EcrOperation::DeleteRepositoryPolicy
                | EcrOperation::PutRegistryPolicy
                | EcrOperation::GetRegistryPolicy
                | EcrOperation::DeleteRegistryPolicy
                | EcrOperation::TagResource
                | EcrOperation::UntagResource
                | EcrOperation::ListTagsForResource
                | EcrOperation::GetAccountSetting
                | EcrOperation::PutAccountSetting
                | EcrOperation::CreateRepositoryCreationTemplate
                | EcrOperation::UpdateRepositoryCreationTemplate
                | EcrOperation::DeleteRepositoryCreationTemplate
                | EcrOperation::DescribeRepositoryCreationTemplates
                // The archive storage class.
                | EcrOperation::UpdateImageStorageClass
                // Lifecycle policies and previews.
                | EcrOperation::PutLifecyclePolicy
                | EcrOperation::GetLifecyclePolicy
                | EcrOperation::DeleteLifecyclePolicy
                | EcrOperation::StartLifecyclePolicyPreview
                | EcrOperation::GetLifecyclePolicyPreview
        )
    }
}

/// Parses the `X-Amz-Target` header value. A missing header, another service's prefix or
/// an action the model does not have is `UnknownOperationException`, as AWS answers.
pub fn parse_target(target: Option<&str>) -> Result<EcrOperation, EcrError> {
    let target = target.unwrap_or("");
    target
        .split_once('.')
        .filter(|(prefix, _)| *prefix == TARGET_PREFIX)
        .and_then(|(_, action)| EcrOperation::from_name(action))
        .ok_or(EcrError::UnknownOperation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_to_operations() {
        assert_eq!(
            parse_target(Some(
                "AmazonEC2ContainerRegistry_V20150921.CreateRepository"
            ))
            .unwrap(),
            EcrOperation::CreateRepository
        );
        for bad in [
            None,
            Some(""),
            Some("CreateRepository"),
            Some("AmazonEC2ContainerRegistry_V20150921."),
            Some("AmazonEC2ContainerRegistry_V20150921.createRepository"),
            Some("AmazonEC2ContainerRegistry_V20150921.Nope"),
            Some("SpencerFrontendService.CreateRepository"),
            Some("AmazonEC2ContainerRegistry_V20150921.CreateRepository.x"),
        ] {
            assert!(
                matches!(parse_target(bad), Err(EcrError::UnknownOperation)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn every_operation_round_trips_and_names_its_iam_action() {
        assert_eq!(EcrOperation::ALL.len(), 58);
        for op in EcrOperation::ALL {
            assert_eq!(EcrOperation::from_name(op.name()), Some(*op));
            assert_eq!(op.iam_action(), format!("ecr:{}", op.name()));
            let target = format!("{TARGET_PREFIX}.{}", op.name());
            assert_eq!(parse_target(Some(&target)).unwrap(), *op);
        }
        let mut names: Vec<&str> = EcrOperation::ALL.iter().map(|o| o.name()).collect();
        let sorted = {
            let mut s = names.clone();
            s.sort();
            s
        };
        assert_eq!(names, sorted);
        names.dedup();
        assert_eq!(names.len(), 58);
    }

    /// When botocore is installed, the list is exactly the model's.
    #[test]
    fn the_list_matches_the_botocore_model_when_available() {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import botocore.loaders as L\nprint('\\n'.join(sorted(L.Loader().load_service_model('ecr','service-2')['operations'])))",
            ])
            .output();
        let Ok(out) = out else { return };
        if !out.status.success() {
            return;
        }
        let model: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        let ours: Vec<String> = EcrOperation::ALL
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        assert_eq!(
            ours, model,
            "update EcrOperation to the installed botocore model"
        );
    }
}
