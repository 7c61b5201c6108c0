//! Repository policies (Set/Get/DeleteRepositoryPolicy) and the registry policy
//! (Put/Get/DeleteRegistryPolicy). Documents are validated here with berth-iam as
//! resource-based policies within ECR's size limit and stored as sent; evaluating them
//! at authorization time is `auth.rs`'s job.

use serde::Deserialize;
use serde_json::{json, Value};

use berth_iam::{Policy, PolicyKind, Principal, SizeLimit};

use super::{repository_name, required, Ctx};
use crate::error::EcrError;
use crate::operation::EcrOperation;

/// Which document a policy text is for (names the member in messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PolicyTarget {
    Repository,
    Registry,
}

impl PolicyTarget {
    fn limit(self) -> SizeLimit {
        match self {
            PolicyTarget::Repository => SizeLimit::ECR_REPOSITORY_POLICY,
            PolicyTarget::Registry => SizeLimit::ECR_REGISTRY_POLICY,
        }
    }

    fn words(self) -> &'static str {
        match self {
            PolicyTarget::Repository => "repository policy",
            PolicyTarget::Registry => "registry policy",
        }
    }
}

/// Parses `text` as a resource-based policy within ECR's 10,240-character limit;
/// anything else is `InvalidParameterException` naming the member and the problem.
pub(crate) fn parse_policy(
    text: &str,
    member: &str,
    target: PolicyTarget,
) -> Result<Policy, EcrError> {
    Policy::parse(text, PolicyKind::Resource, target.limit()).map_err(|e| {
        EcrError::InvalidParameter(format!(
            "Invalid parameter at '{member}' failed to satisfy constraint: 'Invalid {} provided': {e}",
            target.words()
        ))
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SetRepositoryPolicyInput {
    registry_id: Option<String>,
    repository_name: Option<String>,
    policy_text: Option<String>,
    force: Option<bool>,
}

pub(super) async fn set_repository_policy(
    ctx: &Ctx<'_>,
    input: SetRepositoryPolicyInput,
) -> Result<Value, EcrError> {
    let name = required(&input.repository_name, "repositoryName")?;
    let text = required(&input.policy_text, "policyText")?;
    let registry = ctx.registry(input.registry_id.as_deref())?;
    repository_name(&registry, name)?;
    let policy = parse_policy(text, "policyText", PolicyTarget::Repository)?;
    let arn = ctx.repository_arn(&registry, name);
    if !input.force.unwrap_or(false) && locks_out(ctx, &policy, &arn, &registry) {
        return Err(EcrError::InvalidParameter(format!(
            "Invalid parameter at 'policyText' failed to satisfy constraint: 'The repository policy would prevent {} from setting the repository policy again; use force to set it anyway'",
            ctx.caller.arn
        )));
    }
    ctx.settings()
        .set_repository_policy(&registry, name, text, ctx.now_ms())
        .await
        .map_err(|e| EcrError::from_settings(e, &registry))?;
    Ok(json!({
        "registryId": registry,
        "repositoryName": name,
        "policyText": text,
    }))
}

/// Whether `policy`, once set, would explicitly deny the caller
/// `ecr:SetRepositoryPolicy` on the repository (ECR's lock-out guard behind `force`).
fn locks_out(ctx: &Ctx<'_>, policy: &Policy, arn: &str, registry: &str) -> bool {
    let caller = ctx.caller;
    let principal = match &caller.user {
        None => Principal::root(&caller.account_id, &caller.arn),
        Some((name, id)) => Principal::user(&caller.account_id, &caller.arn, name, id),
    };
    let identity: Vec<&Policy> = caller.policies.iter().map(|p| p.as_ref()).collect();
    let req = berth_iam::Request {
        context: ctx.iam_context(),
        identity_policies: &identity,
        resource_policy: Some(policy),
        ..berth_iam::Request::new(
            principal,
            EcrOperation::SetRepositoryPolicy.iam_action(),
            arn,
            registry,
        )
    };
    berth_iam::evaluate(&req).is_explicit_deny()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RepositoryPolicyInput {
    registry_id: Option<String>,
    repository_name: Option<String>,
}

pub(super) async fn get_repository_policy(
    ctx: &Ctx<'_>,
    input: RepositoryPolicyInput,
) -> Result<Value, EcrError> {
    let name = required(&input.repository_name, "repositoryName")?;
    let registry = ctx.registry(input.registry_id.as_deref())?;
    let repo = repository_name(&registry, name)?;
    ctx.existing_repository(&registry, &repo).await?;
    let text = ctx
        .settings()
        .repository_policy(&registry, name)
        .await
        .map_err(|e| EcrError::from_settings(e, &registry))?
        .ok_or_else(|| EcrError::RepositoryPolicyNotFound {
            registry: registry.clone(),
            name: name.to_string(),
        })?;
    Ok(json!({
        "registryId": registry,
        "repositoryName": name,
        "policyText": text,
    }))
}

pub(super) async fn delete_repository_policy(
    ctx: &Ctx<'_>,
    input: RepositoryPolicyInput,
) -> Result<Value, EcrError> {
    let name = required(&input.repository_name, "repositoryName")?;
    let registry = ctx.registry(input.registry_id.as_deref())?;
    repository_name(&registry, name)?;
    let text = ctx
        .settings()
        .delete_repository_policy(&registry, name)
        .await
        .map_err(|e| EcrError::from_settings(e, &registry))?;
    Ok(json!({
        "registryId": registry,
        "repositoryName": name,
        "policyText": text,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PutRegistryPolicyInput {
    policy_text: Option<String>,
}

/// Registry-level actions act on the caller's own registry (the model has no
/// `registryId`) and authorize on `*`, as ECR's registry-scoped actions do.
pub(super) async fn put_registry_policy(
    ctx: &Ctx<'_>,
    input: PutRegistryPolicyInput,
) -> Result<Value, EcrError> {
    let text = required(&input.policy_text, "policyText")?;
    parse_policy(text, "policyText", PolicyTarget::Registry)?;
    let registry = ctx.caller.account_id.clone();
    ctx.settings()
        .put_registry_policy(&registry, text, ctx.now_ms())
        .await
        .map_err(|e| EcrError::from_settings(e, &registry))?;
    Ok(json!({"registryId": registry, "policyText": text}))
}

#[derive(Deserialize)]
pub(super) struct NoInput {}

pub(super) async fn get_registry_policy(ctx: &Ctx<'_>, _: NoInput) -> Result<Value, EcrError> {
    let registry = ctx.caller.account_id.clone();
    let text = ctx
        .settings()
        .registry_policy(&registry)
        .await
        .map_err(|e| EcrError::from_settings(e, &registry))?
        .ok_or_else(|| EcrError::RegistryPolicyNotFound {
            registry: registry.clone(),
        })?;
    Ok(json!({"registryId": registry, "policyText": text}))
}

pub(super) async fn delete_registry_policy(ctx: &Ctx<'_>, _: NoInput) -> Result<Value, EcrError> {
    let registry = ctx.caller.account_id.clone();
    let text = ctx
        .settings()
        .delete_registry_policy(&registry)
        .await
        .map_err(|e| EcrError::from_settings(e, &registry))?;
    Ok(json!({"registryId": registry, "policyText": text}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_as_resource_policies_within_the_ecr_limit() {
        let ok = r#"{"Version":"2012-10-17","Statement":[{"Sid":"pull","Effect":"Allow",
            "Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":["ecr:BatchGetImage"]}]}"#;
        parse_policy(ok, "policyText", PolicyTarget::Repository).unwrap();
        // An identity policy (no Principal) is not a resource policy.
        let identity = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*"}]}"#;
        let e = parse_policy(identity, "policyText", PolicyTarget::Repository).unwrap_err();
        assert!(
            matches!(&e, EcrError::InvalidParameter(m) if m.contains("principal")),
            "{e:?}"
        );
        for bad in ["", "not json", "[]", r#"{"Statement":[]}"#] {
            assert!(matches!(
                parse_policy(bad, "policyText", PolicyTarget::Registry),
                Err(EcrError::InvalidParameter(_))
            ));
        }
        // 10,240 characters, whitespace included, is the limit.
        let pad = |n: usize| format!("{}{}", ok, " ".repeat(n - ok.len()));
        parse_policy(&pad(10_240), "policyText", PolicyTarget::Repository).unwrap();
        let e = parse_policy(&pad(10_241), "policyText", PolicyTarget::Repository).unwrap_err();
        match e {
            EcrError::InvalidParameter(m) => {
                assert!(m.contains("10241") && m.contains("10240"), "{m}");
                assert!(m.contains("'policyText'"), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }
}
