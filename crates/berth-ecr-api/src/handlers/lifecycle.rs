//! Lifecycle policies (Put/Get/DeleteLifecyclePolicy) and their previews
//! (StartLifecyclePolicyPreview, GetLifecyclePolicyPreview), with the botocore model's
//! shapes. Policy texts are validated with berth-lifecycle (ECR's rules and messages) and
//! stored as sent; previews are computed in the background by berth-registry's lifecycle
//! engine against live data, so a client polls (boto3's `LifecyclePolicyPreviewComplete`
//! waiter) and pages the result (`GetLifecyclePolicyPreview` paginator).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use berth_lifecycle::LifecyclePolicy;
use berth_meta::lifecycle::{
    PreviewRecord, PreviewResultRecord, PreviewStatus, PreviewTagFilter, StartPreview,
    PREVIEW_RESULTS_TTL_MS, PREVIEW_STALE_MS,
};
use berth_registry::lifecycle::Lifecycle;

use super::{repository_name, required, Ctx};
use crate::error::EcrError;
use crate::operation::EcrOperation;

/// The model's `LifecyclePolicyText` lower bound (the upper one is berth-lifecycle's).
const MIN_POLICY_CHARS: usize = 100;
/// `LifecyclePreviewMaxResults`: 1..=100; ECR's default page is the largest.
const MAX_PREVIEW_PAGE: i64 = 100;

impl Ctx<'_> {
    /// The lifecycle engine, or `UnsupportedOperationException` when this server was built
    /// without one.
    fn lifecycle(&self, op: EcrOperation) -> Result<&Lifecycle, EcrError> {
        self.state
            .inner
            .lifecycle
            .as_ref()
            .ok_or(EcrError::Unsupported(op))
    }
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// Validates a policy text as ECR does: the model's length bounds, then the language.
fn parse_policy(text: &str) -> Result<LifecyclePolicy, EcrError> {
    let chars = text.chars().count();
    if chars < MIN_POLICY_CHARS {
        return Err(EcrError::InvalidParameter(format!(
            "Invalid parameter at 'lifecyclePolicyText' failed to satisfy constraint: 'Member must have length greater than or equal to {MIN_POLICY_CHARS}' (got {chars} characters)"
        )));
    }
    LifecyclePolicy::parse(text).map_err(EcrError::InvalidLifecyclePolicy)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PutLifecyclePolicyInput {
    registry_id: Option<String>,
    repository_name: Option<String>,
    lifecycle_policy_text: Option<String>,
}

pub(super) async fn put_lifecycle_policy(
    ctx: &Ctx<'_>,
    input: PutLifecyclePolicyInput,
) -> Result<Value, EcrError> {
    let op = EcrOperation::PutLifecyclePolicy;
    let name = required(&input.repository_name, "repositoryName")?;
    let text = required(&input.lifecycle_policy_text, "lifecyclePolicyText")?;
    let registry = ctx.registry(input.registry_id.as_deref())?;
    let repo = repository_name(&registry, name)?;
    parse_policy(text)?;
    let lifecycle = ctx.lifecycle(op)?;
    lifecycle
        .store()
        .put_lifecycle_policy(&registry, &repo, text, ctx.now_ms())
        .await
        .map_err(|e| EcrError::from_meta(e, &registry))?;
    Ok(json!({
        "registryId": registry,
        "repositoryName": name,
        "lifecyclePolicyText": text,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LifecyclePolicyInput {
    registry_id: Option<String>,
    repository_name: Option<String>,
}

/// Get and Delete: the same checks, then read or remove.
async fn policy_action(
    ctx: &Ctx<'_>,
    op: EcrOperation,
    input: LifecyclePolicyInput,
) -> Result<Value, EcrError> {
    let name = required(&input.repository_name, "repositoryName")?;
    let registry = ctx.registry(input.registry_id.as_deref())?;
    let repo = repository_name(&registry, name)?;
    let store = ctx.lifecycle(op)?.store();
    ctx.existing_repository(&registry, &repo).await?;
    let policy = if op == EcrOperation::DeleteLifecyclePolicy {
        store.delete_lifecycle_policy(&repo).await
    } else {
        store.lifecycle_policy(&repo).await
    }
    .map_err(|e| EcrError::from_meta(e, &registry))?
    .ok_or_else(|| EcrError::LifecyclePolicyNotFound {
        registry: registry.clone(),
        name: name.to_string(),
    })?;
    let mut out = json!({
        "registryId": registry,
        "repositoryName": name,
        "lifecyclePolicyText": policy.text,
    });
    if let Some(at) = policy.last_evaluated_ms {
        out["lastEvaluatedAt"] = json!(seconds(at));
    }
    Ok(out)
}

pub(super) async fn get_lifecycle_policy(
    ctx: &Ctx<'_>,
    input: LifecyclePolicyInput,
) -> Result<Value, EcrError> {
    policy_action(ctx, EcrOperation::GetLifecyclePolicy, input).await
}

pub(super) async fn delete_lifecycle_policy(
    ctx: &Ctx<'_>,
    input: LifecyclePolicyInput,
) -> Result<Value, EcrError> {
    policy_action(ctx, EcrOperation::DeleteLifecyclePolicy, input).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StartPreviewInput {
    registry_id: Option<String>,
    repository_name: Option<String>,
    lifecycle_policy_text: Option<String>,
}

pub(super) async fn start_lifecycle_policy_preview(
    ctx: &Ctx<'_>,
    input: StartPreviewInput,
) -> Result<Value, EcrError> {
    let op = EcrOperation::StartLifecyclePolicyPreview;
    let name = required(&input.repository_name, "repositoryName")?;
    let registry = ctx.registry(input.registry_id.as_deref())?;
    let repo = repository_name(&registry, name)?;
    if let Some(text) = &input.lifecycle_policy_text {
        parse_policy(text)?;
    }
    let lifecycle = ctx.lifecycle(op)?;
    ctx.existing_repository(&registry, &repo).await?;
    // Without a text of its own, the preview evaluates the stored policy.
    let text = match input.lifecycle_policy_text {
        Some(t) => t,
        None => {
            let stored = lifecycle
                .store()
                .lifecycle_policy(&repo)
                .await
                .map_err(|e| EcrError::from_meta(e, &registry))?
                .ok_or_else(|| EcrError::LifecyclePolicyNotFound {
                    registry: registry.clone(),
                    name: name.to_string(),
                })?;
            parse_policy(&stored.text)?;
            stored.text
        }
    };
    match lifecycle
        .start_preview(&registry, &repo, &text)
        .await
        .map_err(|e| EcrError::from_registry(e, &registry, name))?
    {
        StartPreview::Started { .. } => Ok(json!({
            "registryId": registry,
            "repositoryName": name,
            "lifecyclePolicyText": text,
            "status": PreviewStatus::InProgress.as_str(),
        })),
        StartPreview::InProgress => Err(EcrError::LifecyclePolicyPreviewInProgress {
            registry,
            name: name.to_string(),
        }),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageIdInput {
    image_digest: Option<String>,
    image_tag: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PreviewFilterInput {
    tag_status: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GetPreviewInput {
    registry_id: Option<String>,
    repository_name: Option<String>,
    image_ids: Option<Vec<ImageIdInput>>,
    next_token: Option<String>,
    max_results: Option<i64>,
    filter: Option<PreviewFilterInput>,
}

const TOKEN_PREFIX: &str = "lp1:";

/// A page token names the preview run and the last position served, so a token from a
/// replaced preview is refused instead of paging another run's rows.
fn encode_token(generation: i64, position: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{TOKEN_PREFIX}{generation}:{position}"))
}

fn invalid_token() -> EcrError {
    EcrError::InvalidParameter("Invalid parameter at 'nextToken': the token is not valid".into())
}

fn decode_token(t: &str) -> Result<(i64, i64), EcrError> {
    let text = URL_SAFE_NO_PAD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(invalid_token)?;
    let (g, p) = text
        .strip_prefix(TOKEN_PREFIX)
        .and_then(|s| s.split_once(':'))
        .ok_or_else(invalid_token)?;
    Ok((
        g.parse().map_err(|_| invalid_token())?,
        p.parse().map_err(|_| invalid_token())?,
    ))
}

fn result_json(r: &PreviewResultRecord) -> Value {
    let mut action = json!({"type": r.action});
    if let Some(c) = &r.target_storage_class {
        action["targetStorageClass"] = json!(c);
    }
    json!({
        "imageTags": r.tags,
        "imageDigest": r.digest,
        "imagePushedAt": seconds(r.pushed_ms),
        "action": action,
        "appliedRulePriority": r.rule_priority,
        "storageClass": r.storage_class,
    })
}

fn summary_json(p: &PreviewRecord) -> Value {
    let transitioning: Vec<Value> = if p.transitioning_count > 0 {
        vec![json!({"targetStorageClass": "ARCHIVE", "imageTotalCount": p.transitioning_count})]
    } else {
        Vec::new()
    };
    json!({
        "expiringImageTotalCount": p.expiring_count,
        "transitioningImageTotalCounts": transitioning,
    })
}

pub(super) async fn get_lifecycle_policy_preview(
    ctx: &Ctx<'_>,
    input: GetPreviewInput,
) -> Result<Value, EcrError> {
    let op = EcrOperation::GetLifecyclePolicyPreview;
    let name = required(&input.repository_name, "repositoryName")?;
    let registry = ctx.registry(input.registry_id.as_deref())?;
    let repo = repository_name(&registry, name)?;
    let filter = match input.filter.and_then(|f| f.tag_status).as_deref() {
        None | Some("ANY") => PreviewTagFilter::Any,
        Some("TAGGED") => PreviewTagFilter::Tagged,
        Some("UNTAGGED") => PreviewTagFilter::Untagged,
        Some(other) => {
            return Err(EcrError::InvalidParameter(format!(
                "Invalid parameter at 'filter.tagStatus' failed to satisfy constraint: 'Member must satisfy enum value set: [TAGGED, UNTAGGED, ANY]' (got '{other}')"
            )))
        }
    };
    let limit = match input.max_results {
        None => MAX_PREVIEW_PAGE as usize,
        Some(n) if (1..=MAX_PREVIEW_PAGE).contains(&n) => n as usize,
        Some(n) => {
            return Err(EcrError::InvalidParameter(format!(
                "Invalid parameter at 'maxResults' failed to satisfy constraint: 'Member must have value between 1 and {MAX_PREVIEW_PAGE}' (got {n})"
            )))
        }
    };
    if let Some(ids) = &input.image_ids {
        if ids.is_empty() || ids.len() > 100 {
            return Err(EcrError::InvalidParameter(
                "Invalid parameter at 'imageIds' failed to satisfy constraint: 'Member must have length between 1 and 100'".into(),
            ));
        }
        if input.next_token.is_some() || input.max_results.is_some() {
            return Err(EcrError::InvalidParameter(
                "maxResults and nextToken cannot be used with imageIds".into(),
            ));
        }
    }
    let token = input.next_token.as_deref().map(decode_token).transpose()?;
    let lifecycle = ctx.lifecycle(op)?;
    let store = lifecycle.store();
    ctx.existing_repository(&registry, &repo).await?;
    let from_meta = |e| EcrError::from_meta(e, &registry);
    let preview = store
        .preview(&repo)
        .await
        .map_err(from_meta)?
        .ok_or_else(|| EcrError::LifecyclePolicyPreviewNotFound {
            registry: registry.clone(),
            name: name.to_string(),
        })?;
    // A run that never finished (the server stopped during it) is reported as failed, so
    // waiters stop; a new StartLifecyclePolicyPreview replaces it.
    let now = lifecycle.now_ms();
    let lost =
        preview.status == PreviewStatus::InProgress && now - preview.started_ms >= PREVIEW_STALE_MS;
    // Results describe the repository when the preview ran; a day later they are stale.
    let expired = preview.status == PreviewStatus::Complete
        && preview
            .finished_ms
            .is_some_and(|f| now - f >= PREVIEW_RESULTS_TTL_MS);
    let status = if lost {
        PreviewStatus::Failed
    } else if expired {
        PreviewStatus::Expired
    } else {
        preview.status
    };
    let mut out = json!({
        "registryId": registry,
        "repositoryName": name,
        "lifecyclePolicyText": preview.policy_text,
        "status": status.as_str(),
        "previewResults": [],
    });
    if status != PreviewStatus::Complete {
        return Ok(out);
    }
    out["summary"] = summary_json(&preview);
    let rows = if let Some(ids) = &input.image_ids {
        // At most 100 identifiers: read the preview's rows once and keep the named images.
        let all = store
            .preview_results(&repo, filter, None, usize::MAX >> 1)
            .await
            .map_err(from_meta)?;
        all.into_iter()
            .filter(|r| {
                ids.iter().any(|id| {
                    id.image_digest.as_deref().is_some_and(|d| d == r.digest)
                        || id
                            .image_tag
                            .as_deref()
                            .is_some_and(|t| r.tags.iter().any(|x| x == t))
                })
            })
            .collect()
    } else {
        let after = match token {
            Some((generation, position)) if generation == preview.generation => Some(position),
            Some(_) => return Err(invalid_token()),
            None => None,
        };
        let mut page = store
            .preview_results(&repo, filter, after, limit + 1)
            .await
            .map_err(from_meta)?;
        if page.len() > limit {
            page.truncate(limit);
            if let Some(last) = page.last() {
                out["nextToken"] = json!(encode_token(preview.generation, last.position));
            }
        }
        page
    };
    out["previewResults"] = Value::Array(rows.iter().map(result_json).collect());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_texts_are_checked_for_length_then_language() {
        let short = r#"{"rules":[]}"#;
        match parse_policy(short).unwrap_err() {
            EcrError::InvalidParameter(m) => {
                assert!(m.contains("greater than or equal to 100"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        let ok = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#;
        parse_policy(ok).unwrap();
        // Two untagged rules: refused with berth-lifecycle's (ECR's) message.
        let bad = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},{"rulePriority":2,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":2},"action":{"type":"expire"}}]}"#;
        let e = parse_policy(bad).unwrap_err();
        let expected = LifecyclePolicy::parse(bad).unwrap_err().to_string();
        let w = crate::error::to_wire(&e);
        assert_eq!(w.aws_type, "InvalidParameterException");
        assert_eq!(w.message, expected);
        assert!(w
            .message
            .starts_with("Invalid parameter at 'LifecyclePolicyText'"));
    }

    #[test]
    fn page_tokens_round_trip_and_junk_is_refused() {
        assert_eq!(decode_token(&encode_token(7, 123)).unwrap(), (7, 123));
        for junk in [
            "",
            "!!",
            &URL_SAFE_NO_PAD.encode("lp1:x:1"),
            &URL_SAFE_NO_PAD.encode("r1:1:2"),
        ] {
            assert!(decode_token(junk).is_err(), "{junk}");
        }
    }

    #[test]
    fn results_and_summaries_have_the_model_shapes() {
        let r = PreviewResultRecord {
            position: 1,
            digest: "sha256:ab".into(),
            tags: vec!["v1".into()],
            pushed_ms: 1_500,
            action: "TRANSITION".into(),
            target_storage_class: Some("ARCHIVE".into()),
            rule_priority: 3,
            storage_class: "STANDARD".into(),
            size: 10,
        };
        assert_eq!(
            result_json(&r),
            json!({"imageTags": ["v1"], "imageDigest": "sha256:ab", "imagePushedAt": 1.5,
                   "action": {"type": "TRANSITION", "targetStorageClass": "ARCHIVE"},
                   "appliedRulePriority": 3, "storageClass": "STANDARD"})
        );
        let p = PreviewRecord {
            account: "1".into(),
            generation: 1,
            policy_text: "p".into(),
            status: PreviewStatus::Complete,
            started_ms: 0,
            finished_ms: Some(1),
            expiring_count: 4,
            transitioning_count: 0,
            failure: None,
        };
        assert_eq!(
            summary_json(&p),
            json!({"expiringImageTotalCount": 4, "transitioningImageTotalCounts": []})
        );
    }
}
