//! What each ECR action acts on: the (action, resource) pairs dispatch authorizes before
//! any handler runs, and the tags a request asks for (`aws:RequestTag`, `aws:TagKeys`).
//!
//! The match below has no wildcard: a new [`EcrOperation`] does not compile until it says
//! what it acts on.

use serde_json::Value;

use berth_access::{AuthorizedOperation, Caller, RequestTags, Requirement, Resource};

use super::{registry_of, repository_name, tags::parse_repository_arn};
use crate::error::EcrError;
use crate::operation::EcrOperation;

/// A string member of the input (`None` when absent or null).
fn member<'a>(input: &'a Value, name: &str) -> Result<Option<&'a str>, EcrError> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(EcrError::Serialization(format!(
            "the member '{name}' must be a string"
        ))),
    }
}

fn null(member: &str) -> EcrError {
    EcrError::InvalidParameter(format!(
        "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
    ))
}

/// The repository named by `registryId` and `repositoryName`.
fn named_repository(input: &Value, caller: &Caller) -> Result<Resource, EcrError> {
    let name = member(input, "repositoryName")?.ok_or_else(|| null("repositoryName"))?;
    let account = registry_of(&caller.account_id, member(input, "registryId")?)?;
    repository_name(&account, name)?;
    Ok(Resource::Repository {
        account,
        name: name.to_string(),
    })
}

/// The repository named by `resourceArn` (TagResource, UntagResource, ListTagsForResource).
fn arn_repository(input: &Value, caller: &Caller, region: &str) -> Result<Resource, EcrError> {
    let arn = member(input, "resourceArn")?.ok_or_else(|| null("resourceArn"))?;
    let (account, name) = parse_repository_arn(&caller.account_id, region, arn)?;
    Ok(Resource::Repository { account, name })
}

/// DescribeRepositories: each named repository, or all of the registry's.
fn described(input: &Value, caller: &Caller) -> Result<Vec<Resource>, EcrError> {
    let account = registry_of(&caller.account_id, member(input, "registryId")?)?;
    let names = match input.get("repositoryNames") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(names)) => names
            .iter()
            .map(|n| {
                n.as_str().map(str::to_string).ok_or_else(|| {
                    EcrError::Serialization("repositoryNames must be a list of strings".into())
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => {
            return Err(EcrError::Serialization(
                "repositoryNames must be a list of strings".into(),
            ))
        }
    };
    if names.is_empty() {
        return Ok(vec![Resource::AllRepositories { account }]);
    }
    names
        .into_iter()
        .map(|name| {
            repository_name(&account, &name)?;
            Ok(Resource::Repository {
                account: account.clone(),
                name,
            })
        })
        .collect()
}

/// The `tags` member (a `TagList`) as pairs; malformed entries are left to the handler's
/// validation.
fn tag_list(input: &Value) -> Vec<(String, String)> {
    let Some(Value::Array(tags)) = input.get("tags") else {
        return vec![];
    };
    tags.iter()
        .filter_map(|t| {
            let key = t.get("Key")?.as_str()?;
            let value = t.get("Value")?.as_str()?;
            Some((key.to_string(), value.to_string()))
        })
        .collect()
}

impl EcrOperation {
    /// The tags the request asks to put or remove, for `aws:RequestTag/<key>` and
    /// `aws:TagKeys`.
    pub fn request_tags(self, input: &Value) -> RequestTags {
        match self {
            EcrOperation::CreateRepository | EcrOperation::TagResource => RequestTags {
                tags: tag_list(input),
                keys: vec![],
            },
            EcrOperation::UntagResource => RequestTags {
                tags: vec![],
                keys: match input.get("tagKeys") {
                    Some(Value::Array(keys)) => keys
                        .iter()
                        .filter_map(|k| k.as_str().map(str::to_string))
                        .collect(),
                    _ => vec![],
                },
            },
            _ => RequestTags::default(),
        }
    }
}

impl AuthorizedOperation for EcrOperation {
    type Input = Value;
    type Error = EcrError;

    fn iam_action(&self) -> &'static str {
        EcrOperation::iam_action(*self)
    }

    fn requirements(
        &self,
        input: &Value,
        caller: &Caller,
        region: &str,
    ) -> Result<Vec<Requirement>, EcrError> {
        use EcrOperation as E;
        let action = EcrOperation::iam_action(*self);
        let own_account = || Resource::Account {
            account: caller.account_id.clone(),
        };
        let resources = match self {
            // Actions on the repository named by `registryId` + `repositoryName`.
            E::BatchCheckLayerAvailability
            | E::BatchDeleteImage
            | E::BatchGetImage
            | E::CompleteLayerUpload
            | E::DeleteLifecyclePolicy
            | E::DeleteRepository
            | E::DeleteRepositoryPolicy
            | E::DescribeImages
            | E::GetDownloadUrlForLayer
            | E::GetLifecyclePolicy
            | E::GetLifecyclePolicyPreview
            | E::GetRepositoryPolicy
            | E::InitiateLayerUpload
            | E::ListImageReferrers
            | E::ListImages
            | E::PutImage
            | E::PutImageTagMutability
            | E::PutLifecyclePolicy
            | E::SetRepositoryPolicy
            | E::StartLifecyclePolicyPreview
            | E::UpdateImageStorageClass
            | E::UploadLayerPart => vec![named_repository(input, caller)?],
            E::CreateRepository => {
                let repository = named_repository(input, caller)?;
                let mut out = vec![Requirement::new(action, repository.clone())];
                // Tags given at creation also need ecr:TagResource, as in ECR.
                if !tag_list(input).is_empty() {
                    out.push(Requirement::new("ecr:TagResource", repository));
                }
                return Ok(out);
            }
            // The repository named by its ARN.
            E::TagResource | E::UntagResource | E::ListTagsForResource => {
                vec![arn_repository(input, caller, region)?]
            }
            E::DescribeRepositories => described(input, caller)?,
            // Account-level actions on the caller's own registry (`*`).
            E::GetAuthorizationToken
            | E::GetAccountSetting
            | E::PutAccountSetting
            | E::PutRegistryPolicy
            | E::GetRegistryPolicy
            | E::DeleteRegistryPolicy
            | E::RegisterPullTimeUpdateExclusion
            | E::DeregisterPullTimeUpdateExclusion
            | E::ListPullTimeUpdateExclusions
            | E::CreateRepositoryCreationTemplate
            | E::UpdateRepositoryCreationTemplate
            | E::DeleteRepositoryCreationTemplate
            | E::DescribeRepositoryCreationTemplates => vec![own_account()],
            // Not implemented by this version: they answer UnsupportedOperationException
            // before authorization; should one be implemented, it must move above.
            E::BatchGetRepositoryScanningConfiguration
            | E::CreatePullThroughCacheRule
            | E::DeletePullThroughCacheRule
            | E::DeleteSigningConfiguration
            | E::DescribeImageReplicationStatus
            | E::DescribeImageScanFindings
            | E::DescribeImageSigningStatus
            | E::DescribePullThroughCacheRules
            | E::DescribeRegistry
            | E::GetRegistryScanningConfiguration
            | E::GetSigningConfiguration
            | E::PutImageScanningConfiguration
            | E::PutRegistryScanningConfiguration
            | E::PutReplicationConfiguration
            | E::PutSigningConfiguration
            | E::StartImageScan
            | E::UpdatePullThroughCacheRule
            | E::ValidatePullThroughCacheRule => {
                return Err(EcrError::Unsupported(*self));
            }
        };
        Ok(resources
            .into_iter()
            .map(|r| Requirement::new(action, r))
            .collect())
    }
}
