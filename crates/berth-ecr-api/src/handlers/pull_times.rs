//! Register/Deregister/ListPullTimeUpdateExclusions: principals whose pulls do not update
//! `lastRecordedPullTime`. Stored per registry (account), at most
//! [`MAX_EXCLUSIONS`] as ECR allows; the registry's pull-time recorder applies them when
//! it writes a batch of pulls.

use serde::Deserialize;
use serde_json::{json, Value};

use berth_meta::RegisterExclusionOutcome;

use super::images::{decode_token, encode_token, page_size, secs};
use super::{required, Ctx};
use crate::error::EcrError;

/// ECR's quota: 100 exclusions per account.
pub const MAX_EXCLUSIONS: usize = 100;

/// The model's `PrincipalArn`: at most 200 characters of
/// `^arn:aws(-[a-z]+)*:iam::[0-9]{12}:(role|user)/[\w+=,.@-]+(/[\w+=,.@-]+)*$`.
pub(crate) fn valid_principal_arn(arn: &str) -> bool {
    fn partition(p: &str) -> bool {
        let Some(rest) = p.strip_prefix("aws") else {
            return false;
        };
        rest.is_empty()
            || rest.strip_prefix('-').is_some_and(|r| {
                r.split('-')
                    .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase()))
            })
    }
    fn path(p: &str) -> bool {
        p.split('/').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
        })
    }
    if arn.len() > 200 {
        return false;
    }
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, part, service, region, account, resource] = parts[..] else {
        return false;
    };
    let resource_ok = resource
        .split_once('/')
        .is_some_and(|(kind, p)| (kind == "role" || kind == "user") && path(p));
    prefix == "arn"
        && partition(part)
        && service == "iam"
        && region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && resource_ok
}

fn principal(arn: &Option<String>) -> Result<&str, EcrError> {
    let arn = required(arn, "principalArn")?;
    if valid_principal_arn(arn) {
        Ok(arn)
    } else {
        Err(EcrError::InvalidParameter(format!(
            "Invalid parameter at 'principalArn' failed to satisfy constraint: 'Member must satisfy regular expression pattern: ^arn:aws(-[a-z]+)*:iam::[0-9]{{12}}:(role|user)/[\\w+=,.@-]+(/[\\w+=,.@-]+)*$ and have length less than or equal to 200' (got '{arn}')"
        )))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ExclusionInput {
    principal_arn: Option<String>,
}

pub(super) async fn register(ctx: &Ctx<'_>, input: ExclusionInput) -> Result<Value, EcrError> {
    let arn = principal(&input.principal_arn)?;
    let account = ctx.caller.account_id.clone();
    let now_ms = (ctx.now.unix_timestamp_nanos() / 1_000_000) as i64;
    let outcome = ctx
        .state
        .inner
        .registry
        .pull_time_store()
        .add_pull_time_exclusion(&account, arn, now_ms, MAX_EXCLUSIONS)
        .await
        .map_err(|e| EcrError::from_meta(e, &account))?;
    match outcome {
        RegisterExclusionOutcome::Registered(e) => Ok(json!({
            "principalArn": e.principal_arn,
            "createdAt": secs(e.created_ms),
        })),
        RegisterExclusionOutcome::AlreadyExists => Err(EcrError::ExclusionAlreadyExists(format!(
            "The pull time update exclusion for '{arn}' already exists in the registry with id '{account}'"
        ))),
        RegisterExclusionOutcome::LimitExceeded => Err(EcrError::LimitExceeded(format!(
            "The registry with id '{account}' already has the maximum of {MAX_EXCLUSIONS} pull time update exclusions"
        ))),
    }
}

pub(super) async fn deregister(ctx: &Ctx<'_>, input: ExclusionInput) -> Result<Value, EcrError> {
    let arn = principal(&input.principal_arn)?;
    let account = ctx.caller.account_id.clone();
    let removed = ctx
        .state
        .inner
        .registry
        .pull_time_store()
        .remove_pull_time_exclusion(&account, arn)
        .await
        .map_err(|e| EcrError::from_meta(e, &account))?;
    if !removed {
        return Err(EcrError::ExclusionNotFound(format!(
            "The pull time update exclusion for '{arn}' was not found in the registry with id '{account}'"
        )));
    }
    Ok(json!({ "principalArn": arn }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListInput {
    max_results: Option<i64>,
    next_token: Option<String>,
}

const TOKEN: &str = "pe1";

pub(super) async fn list(ctx: &Ctx<'_>, input: ListInput) -> Result<Value, EcrError> {
    let limit = page_size(input.max_results, 100, 1000)?;
    let after = input
        .next_token
        .as_deref()
        .map(|t| decode_token(TOKEN, t))
        .transpose()?;
    let account = ctx.caller.account_id.clone();
    let mut rows = ctx
        .state
        .inner
        .registry
        .pull_time_store()
        .pull_time_exclusions(Some(&account), after.as_deref(), limit + 1)
        .await
        .map_err(|e| EcrError::from_meta(e, &account))?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let mut out = json!({
        "pullTimeUpdateExclusions": rows.iter().map(|e| e.principal_arn.clone()).collect::<Vec<_>>(),
    });
    if let (true, Some(last)) = (more, rows.last()) {
        out["nextToken"] = json!(encode_token(TOKEN, &last.principal_arn));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_arns_follow_the_model_pattern() {
        for ok in [
            "arn:aws:iam::123456789012:user/alice",
            "arn:aws:iam::123456789012:role/scanner",
            "arn:aws:iam::123456789012:role/path/to/Some_Role+=,.@-x",
            "arn:aws-cn:iam::123456789012:user/a",
            "arn:aws-us-gov:iam::123456789012:user/a",
        ] {
            assert!(valid_principal_arn(ok), "{ok}");
        }
        let long = format!("arn:aws:iam::123456789012:user/{}", "a".repeat(200));
        for bad in [
            "",
            "arn:aws:iam::123456789012:root",
            "arn:aws:iam::123456789012:group/devs",
            "arn:aws:iam::12345678901:user/a",
            "arn:aws:iam:us-east-1:123456789012:user/a",
            "arn:aws:sts::123456789012:user/a",
            "arn:aws-:iam::123456789012:user/a",
            "arn:aws:iam::123456789012:user/",
            "arn:aws:iam::123456789012:user/a//b",
            "arn:aws:iam::123456789012:user/a b",
            "arn:azure:iam::123456789012:user/a",
            long.as_str(),
        ] {
            assert!(!valid_principal_arn(bad), "{bad}");
        }
    }
}
