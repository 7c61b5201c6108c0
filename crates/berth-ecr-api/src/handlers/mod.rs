//! The implemented actions, with the botocore model's request and response shapes.

mod images;
mod layers;
mod lifecycle;
mod mutability;
mod pull_times;
mod storage_class;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

use berth_meta::RepositoryRecord;
use berth_types::{AccountId, RepositoryName};

use crate::error::EcrError;
use crate::operation::EcrOperation;
use crate::EcrState;
use berth_access::token::{self, TokenClaims, TOKEN_LIFETIME_SECS};
use berth_access::{Caller, ConnInfo};

mod account_settings;
mod policies;
pub(crate) mod requirements;
mod settings_ctx;
mod tags;
mod templates;

/// Default and largest page of DescribeRepositories.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: i64 = 1000;

/// What a handler can reach. Handlers do not authorize: dispatch has authorized every
/// requirement the operation declares ([`requirements`]) before a handler runs.
pub(crate) struct Ctx<'a> {
    pub state: &'a EcrState,
    pub caller: &'a Caller,
    pub conn: ConnInfo,
    pub now: OffsetDateTime,
    /// `host[:port]` for repository URIs and the proxy endpoint.
    pub host: String,
}

impl Ctx<'_> {
    fn region(&self) -> &str {
        &self.state.inner.config.region
    }

    /// The registry a request addresses: `registryId` (12 digits) or the caller's account.
    fn registry(&self, registry_id: Option<&str>) -> Result<String, EcrError> {
        registry_of(&self.caller.account_id, registry_id)
    }

    /// `host[:port]` of `registry`'s `/v2` endpoint (see `registry_hosts`).
    pub(crate) fn registry_host(&self, registry: &str) -> String {
        match registry.parse() {
            Ok(account) => self.state.inner.config.hosts.host_of(account, &self.host),
            Err(_) => self.host.clone(),
        }
    }

    fn repository_arn(&self, registry: &str, name: &str) -> String {
        berth_iam::ecr_repository_arn(self.region(), registry, name)
    }

    fn repository_json(&self, registry: &str, r: &RepositoryRecord) -> Value {
        let mut v = json!({
            "repositoryArn": self.repository_arn(registry, &r.name),
            "registryId": registry,
            "repositoryName": r.name,
            "repositoryUri": format!("{}/{}", self.registry_host(registry), r.name),
            "createdAt": r.created_ms as f64 / 1000.0,
            "imageTagMutability": r.image_tag_mutability,
            "imageScanningConfiguration": {"scanOnPush": false},
            "encryptionConfiguration": {"encryptionType": "AES256"},
        });
        if let Some(filters) = mutability::filters_json(r) {
            v["imageTagMutabilityExclusionFilters"] = filters;
        }
        v
    }
}

/// The registry a request addresses: `registryId` (12 digits) or `caller_account`.
fn registry_of(caller_account: &str, registry_id: Option<&str>) -> Result<String, EcrError> {
    match registry_id {
        None => Ok(caller_account.to_string()),
        Some(id) if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) => Ok(id.to_string()),
        Some(id) => Err(EcrError::InvalidParameter(format!(
            "Invalid parameter at 'registryId' failed to satisfy constraint: 'must satisfy regular expression '[0-9]{{12}}'' (got '{id}')"
        ))),
    }
}

fn decode<T: DeserializeOwned>(input: Value) -> Result<T, EcrError> {
    serde_json::from_value(input).map_err(|e| EcrError::Serialization(e.to_string()))
}

fn invalid_name(name: &str) -> EcrError {
    EcrError::InvalidParameter(format!(
        "Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy regular expression '[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(\\/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*' and be 2 to 256 characters long' (got '{name}')"
    ))
}

/// The model's `RepositoryName`: 2–256 characters of
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
pub(crate) fn valid_repository_name(name: &str) -> bool {
    (2..=256).contains(&name.len()) && name.split('/').all(berth_types::valid_name_component)
}

/// `registry` (an account id [`Ctx::registry`] accepted) as an [`AccountId`].
fn account_id(registry: &str) -> Result<AccountId, EcrError> {
    registry.parse().map_err(|_| {
        EcrError::InvalidParameter(format!(
            "Invalid parameter at 'registryId' failed to satisfy constraint: 'must satisfy regular expression '[0-9]{{12}}'' (got '{registry}')"
        ))
    })
}

/// Repository `name` of `registry` (an account id [`Ctx::registry`] accepted).
fn repository_name(registry: &str, name: &str) -> Result<RepositoryName, EcrError> {
    if !valid_repository_name(name) {
        return Err(invalid_name(name));
    }
    RepositoryName::new(account_id(registry)?, name).map_err(|_| invalid_name(name))
}

pub(crate) async fn handle(
    ctx: &Ctx<'_>,
    op: EcrOperation,
    input: Value,
) -> Result<Value, EcrError> {
    match op {
        EcrOperation::CreateRepository => create_repository(ctx, decode(input)?).await,
        EcrOperation::DescribeRepositories => describe_repositories(ctx, decode(input)?).await,
        EcrOperation::DeleteRepository => delete_repository(ctx, decode(input)?).await,
        EcrOperation::GetAuthorizationToken => get_authorization_token(ctx, decode(input)?),
        // Images, layers, tag mutability and pull times.
        EcrOperation::PutImage => images::put_image(ctx, decode(input)?).await,
        EcrOperation::BatchGetImage => images::batch_get_image(ctx, decode(input)?).await,
        EcrOperation::BatchDeleteImage => images::batch_delete_image(ctx, decode(input)?).await,
        EcrOperation::DescribeImages => images::describe_images(ctx, decode(input)?).await,
        EcrOperation::ListImages => images::list_images(ctx, decode(input)?).await,
        EcrOperation::ListImageReferrers => images::list_image_referrers(ctx, decode(input)?).await,
        EcrOperation::BatchCheckLayerAvailability => {
            layers::batch_check_layer_availability(ctx, decode(input)?).await
        }
        EcrOperation::InitiateLayerUpload => {
            layers::initiate_layer_upload(ctx, decode(input)?).await
        }
        EcrOperation::UploadLayerPart => layers::upload_layer_part(ctx, decode(input)?).await,
        EcrOperation::CompleteLayerUpload => {
            layers::complete_layer_upload(ctx, decode(input)?).await
        }
        EcrOperation::GetDownloadUrlForLayer => {
            layers::get_download_url_for_layer(ctx, decode(input)?).await
        }
        EcrOperation::PutImageTagMutability => {
            mutability::put_image_tag_mutability(ctx, decode(input)?).await
        }
        EcrOperation::RegisterPullTimeUpdateExclusion => {
            pull_times::register(ctx, decode(input)?).await
        }
        EcrOperation::DeregisterPullTimeUpdateExclusion => {
            pull_times::deregister(ctx, decode(input)?).await
        }
        EcrOperation::ListPullTimeUpdateExclusions => pull_times::list(ctx, decode(input)?).await,
        // Registry configuration.
        EcrOperation::SetRepositoryPolicy => {
            policies::set_repository_policy(ctx, decode(input)?).await
        }
        EcrOperation::GetRepositoryPolicy => {
            policies::get_repository_policy(ctx, decode(input)?).await
        }
        EcrOperation::DeleteRepositoryPolicy => {
            policies::delete_repository_policy(ctx, decode(input)?).await
        }
        EcrOperation::PutRegistryPolicy => policies::put_registry_policy(ctx, decode(input)?).await,
        EcrOperation::GetRegistryPolicy => policies::get_registry_policy(ctx, decode(input)?).await,
        EcrOperation::DeleteRegistryPolicy => {
            policies::delete_registry_policy(ctx, decode(input)?).await
        }
        EcrOperation::TagResource => tags::tag_resource(ctx, decode(input)?).await,
        EcrOperation::UntagResource => tags::untag_resource(ctx, decode(input)?).await,
        EcrOperation::ListTagsForResource => {
            tags::list_tags_for_resource(ctx, decode(input)?).await
        }
        EcrOperation::GetAccountSetting => {
            account_settings::get_account_setting(ctx, decode(input)?).await
        }
        EcrOperation::PutAccountSetting => {
            account_settings::put_account_setting(ctx, decode(input)?).await
        }
        EcrOperation::CreateRepositoryCreationTemplate => {
            templates::create_template(ctx, decode(input)?).await
        }
        EcrOperation::UpdateRepositoryCreationTemplate => {
            templates::update_template(ctx, decode(input)?).await
        }
        EcrOperation::DeleteRepositoryCreationTemplate => {
            templates::delete_template(ctx, decode(input)?).await
        }
        EcrOperation::DescribeRepositoryCreationTemplates => {
            templates::describe_templates(ctx, decode(input)?).await
        }
        // The archive storage class.
        EcrOperation::UpdateImageStorageClass => {
            storage_class::update_image_storage_class(ctx, decode(input)?).await
        }
        // Lifecycle policies and previews.
        EcrOperation::PutLifecyclePolicy => {
            lifecycle::put_lifecycle_policy(ctx, decode(input)?).await
        }
        EcrOperation::GetLifecyclePolicy => {
            lifecycle::get_lifecycle_policy(ctx, decode(input)?).await
        }
        EcrOperation::DeleteLifecyclePolicy => {
            lifecycle::delete_lifecycle_policy(ctx, decode(input)?).await
        }
        EcrOperation::StartLifecyclePolicyPreview => {
            lifecycle::start_lifecycle_policy_preview(ctx, decode(input)?).await
        }
        EcrOperation::GetLifecyclePolicyPreview => {
            lifecycle::get_lifecycle_policy_preview(ctx, decode(input)?).await
        }
        other => Err(EcrError::Unsupported(other)),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScanningInput {
    scan_on_push: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EncryptionInput {
    encryption_type: String,
    kms_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateRepositoryInput {
    registry_id: Option<String>,
    repository_name: Option<String>,
    tags: Option<Vec<tags::TagInput>>,
    image_tag_mutability: Option<String>,
    image_tag_mutability_exclusion_filters: Option<Vec<mutability::ExclusionFilterInput>>,
    image_scanning_configuration: Option<ScanningInput>,
    encryption_configuration: Option<EncryptionInput>,
}

fn required<'a>(v: &'a Option<String>, member: &str) -> Result<&'a str, EcrError> {
    v.as_deref().ok_or_else(|| {
        EcrError::InvalidParameter(format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

async fn create_repository(ctx: &Ctx<'_>, input: CreateRepositoryInput) -> Result<Value, EcrError> {
    let name = required(&input.repository_name, "repositoryName")?;
    let registry = ctx.registry(input.registry_id.as_deref())?;
    let repo = repository_name(&registry, name)?;
    let settings = mutability::settings_of(
        input.image_tag_mutability,
        input.image_tag_mutability_exclusion_filters,
    )?;
    let tags = match &input.tags {
        Some(t) => tags::validate_tags(t, "tags")?,
        None => Vec::new(),
    };
    if input
        .image_scanning_configuration
        .is_some_and(|s| s.scan_on_push == Some(true))
    {
        return Err(EcrError::InvalidParameter(
            "Image scanning (scanOnPush) is not supported by this Berth version yet".into(),
        ));
    }
    if let Some(enc) = input.encryption_configuration {
        if enc.encryption_type != "AES256" || enc.kms_key.is_some() {
            return Err(EcrError::InvalidParameter(format!(
                "Only encryptionType AES256 is supported by Berth (got '{}')",
                enc.encryption_type
            )));
        }
    }
    // With its tags, in one transaction.
    let new = berth_meta::settings::NewRepository {
        lifecycle_policy: None,
        settings,
        tags,
        policy: None,
    };
    let record = ctx
        .settings()
        .create_repository_with(&registry, &repo, &new, ctx.now_ms())
        .await
        .map_err(|e| EcrError::from_settings(e, &registry))?;
    Ok(json!({"repository": ctx.repository_json(&registry, &record)}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeRepositoriesInput {
    registry_id: Option<String>,
    repository_names: Option<Vec<String>>,
    next_token: Option<String>,
    max_results: Option<i64>,
}

const TOKEN_PREFIX: &str = "r1:";

fn encode_next_token(last: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{TOKEN_PREFIX}{last}"))
}

fn decode_next_token(t: &str) -> Result<String, EcrError> {
    URL_SAFE_NO_PAD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix(TOKEN_PREFIX).map(str::to_string))
        .ok_or_else(|| {
            EcrError::InvalidParameter(
                "Invalid parameter at 'nextToken': the token is not valid".into(),
            )
        })
}

async fn describe_repositories(
    ctx: &Ctx<'_>,
    input: DescribeRepositoriesInput,
) -> Result<Value, EcrError> {
    let registry = ctx.registry(input.registry_id.as_deref())?;
    let from_meta = |e| EcrError::from_meta(e, &registry);
    if let Some(names) = input.repository_names {
        if names.is_empty() || names.len() > 100 {
            return Err(EcrError::InvalidParameter(
                "Invalid parameter at 'repositoryNames' failed to satisfy constraint: 'Member must have length between 1 and 100'".into(),
            ));
        }
        if input.next_token.is_some() || input.max_results.is_some() {
            return Err(EcrError::InvalidParameter(
                "maxResults and nextToken cannot be used with repositoryNames".into(),
            ));
        }
        let repos = names
            .iter()
            .map(|n| repository_name(&registry, n))
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(repos.len());
        for (repo, name) in repos.iter().zip(&names) {
            let r = ctx
                .state
                .inner
                .registry
                .repository_store()
                .get_repository(repo)
                .await
                .map_err(from_meta)?
                .ok_or_else(|| EcrError::RepositoryNotFound {
                    registry: registry.clone(),
                    name: name.clone(),
                })?;
            out.push(ctx.repository_json(&registry, &r));
        }
        return Ok(json!({"repositories": out}));
    }
    let limit = match input.max_results {
        None => DEFAULT_PAGE,
        Some(n) if (1..=MAX_PAGE).contains(&n) => n as usize,
        Some(n) => {
            return Err(EcrError::InvalidParameter(format!(
                "Invalid parameter at 'maxResults' failed to satisfy constraint: 'Member must have value between 1 and 1000' (got {n})"
            )))
        }
    };
    let after = input
        .next_token
        .as_deref()
        .map(decode_next_token)
        .transpose()?;
    let mut rows = ctx
        .state
        .inner
        .registry
        .repository_store()
        .describe_repositories(account_id(&registry)?, after.as_deref(), limit + 1)
        .await
        .map_err(from_meta)?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let mut out = json!({
        "repositories": rows.iter().map(|r| ctx.repository_json(&registry, r)).collect::<Vec<_>>(),
    });
    if more {
        if let Some(last) = rows.last() {
            out["nextToken"] = json!(encode_next_token(&last.name));
        }
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteRepositoryInput {
    registry_id: Option<String>,
    repository_name: Option<String>,
    force: Option<bool>,
}

async fn delete_repository(ctx: &Ctx<'_>, input: DeleteRepositoryInput) -> Result<Value, EcrError> {
    let name = required(&input.repository_name, "repositoryName")?;
    let registry = ctx.registry(input.registry_id.as_deref())?;
    let repo = repository_name(&registry, name)?;
    let record = ctx
        .state
        .inner
        .registry
        .delete_repository(&repo, input.force.unwrap_or(false))
        .await
        .map_err(|e| EcrError::from_meta(e, &registry))?;
    Ok(json!({"repository": ctx.repository_json(&registry, &record)}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetAuthorizationTokenInput {
    registry_ids: Option<Vec<String>>,
}

fn get_authorization_token(
    ctx: &Ctx<'_>,
    input: GetAuthorizationTokenInput,
) -> Result<Value, EcrError> {
    let registries = match input.registry_ids {
        None => vec![ctx.caller.account_id.clone()],
        Some(ids) if ids.is_empty() || ids.len() > 10 => {
            return Err(EcrError::InvalidParameter(
                "Invalid parameter at 'registryIds' failed to satisfy constraint: 'Member must have length between 1 and 10'".into(),
            ))
        }
        Some(ids) => ids
            .iter()
            .map(|id| ctx.registry(Some(id)))
            .collect::<Result<Vec<_>, _>>()?,
    };
    let expires_at = ctx.now.unix_timestamp() + TOKEN_LIFETIME_SECS;
    let password = token::sign(
        &ctx.state.inner.config.login_token_key,
        &TokenClaims {
            access_key_id: ctx.caller.access_key_id.clone(),
            account_id: ctx.caller.account_id.clone(),
            user: ctx.caller.user.as_ref().map(|(name, _)| name.clone()),
            expires_at,
            login_expires_at: expires_at,
        },
    );
    let authorization_token = STANDARD.encode(format!("AWS:{password}"));
    let scheme = if ctx.conn.secure { "https" } else { "http" };
    let data: Vec<Value> = registries
        .iter()
        .map(|registry| {
            json!({
                "authorizationToken": authorization_token,
                "expiresAt": expires_at,
                "proxyEndpoint": format!("{scheme}://{}", ctx.registry_host(registry)),
            })
        })
        .collect();
    Ok(json!({"authorizationData": data}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_follow_the_model() {
        for ok in [
            "ab",
            "a1",
            "team/app",
            "a.b",
            "a_b",
            "a__b",
            "a---b",
            "x/y/z-1.2_3",
            &"a".repeat(256),
        ] {
            assert!(valid_repository_name(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "A1",
            "ab/",
            "/ab",
            "a//b",
            "a..b",
            "a___b",
            "a.-b",
            "-ab",
            "ab-",
            "a b",
            "Ab",
            &"a".repeat(257),
        ] {
            assert!(!valid_repository_name(bad), "{bad}");
        }
    }

    #[test]
    fn next_tokens_round_trip_and_junk_is_refused() {
        let t = encode_next_token("team/app");
        assert_eq!(decode_next_token(&t).unwrap(), "team/app");
        assert!(decode_next_token("!!").is_err());
        assert!(decode_next_token(&URL_SAFE_NO_PAD.encode("x")).is_err());
    }
}
