//! GetAccountSetting / PutAccountSetting. The names and values are those the model
//! documents; an unset setting reads as its default.
//!
//! Defaults: `BASIC_SCAN_TYPE_VERSION` = `AWS_NATIVE` and `REGISTRY_POLICY_SCOPE` = `V2`
//! (the only values the model lists). `BLOB_MOUNTING` defaults to `ENABLED`, unlike ECR
//! (where it is opt-in), because a Berth registry has always mounted blobs across its
//! repositories; `DISABLED` makes `/v2` cross-repository mounts fall back to an upload, as
//! ECR does.

use serde::Deserialize;
use serde_json::{json, Value};

use berth_registry::create_on_push::BLOB_MOUNTING;

use super::Ctx;
use crate::error::EcrError;

/// (name, valid values, default).
pub(crate) const SETTINGS: &[(&str, &[&str], &str)] = &[
    ("BASIC_SCAN_TYPE_VERSION", &["AWS_NATIVE"], "AWS_NATIVE"),
    ("REGISTRY_POLICY_SCOPE", &["V2"], "V2"),
    (BLOB_MOUNTING, &["ENABLED", "DISABLED"], "ENABLED"),
];

/// The (valid values, default) of a setting name, or the model's validation error.
fn setting(
    name: Option<&str>,
) -> Result<(&'static str, &'static [&'static str], &'static str), EcrError> {
    let name = name.ok_or_else(|| {
        EcrError::InvalidParameter(
            "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null".into(),
        )
    })?;
    if name.is_empty() || name.chars().count() > 64 {
        return Err(EcrError::InvalidParameter(format!(
            "Invalid parameter at 'name' failed to satisfy constraint: 'Member must have length between 1 and 64' (got '{name}')"
        )));
    }
    SETTINGS
        .iter()
        .find(|(n, _, _)| *n == name)
        .copied()
        .ok_or_else(|| {
            let names: Vec<&str> = SETTINGS.iter().map(|(n, _, _)| *n).collect();
            EcrError::InvalidParameter(format!(
                "Invalid parameter at 'name' failed to satisfy constraint: 'Member must be one of [{}]' (got '{name}')",
                names.join(", ")
            ))
        })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GetAccountSettingInput {
    name: Option<String>,
}

pub(super) async fn get_account_setting(
    ctx: &Ctx<'_>,
    input: GetAccountSettingInput,
) -> Result<Value, EcrError> {
    let (name, _, default) = setting(input.name.as_deref())?;
    let account = ctx.caller.account_id.clone();
    let value = ctx
        .settings()
        .account_setting(&account, name)
        .await
        .map_err(|e| EcrError::from_settings(e, &account))?
        .unwrap_or_else(|| default.to_string());
    Ok(json!({"name": name, "value": value}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PutAccountSettingInput {
    name: Option<String>,
    value: Option<String>,
}

pub(super) async fn put_account_setting(
    ctx: &Ctx<'_>,
    input: PutAccountSettingInput,
) -> Result<Value, EcrError> {
    let (name, values, _) = setting(input.name.as_deref())?;
    let value = input.value.as_deref().ok_or_else(|| {
        EcrError::InvalidParameter(
            "1 validation error detected: Value null at 'value' failed to satisfy constraint: Member must not be null".into(),
        )
    })?;
    if !values.contains(&value) {
        return Err(EcrError::InvalidParameter(format!(
            "Invalid parameter at 'value' failed to satisfy constraint: 'The value of {name} must be one of [{}]' (got '{value}')",
            values.join(", ")
        )));
    }
    let account = ctx.caller.account_id.clone();
    ctx.settings()
        .put_account_setting(&account, name, value, ctx.now_ms())
        .await
        .map_err(|e| EcrError::from_settings(e, &account))?;
    Ok(json!({"name": name, "value": value}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_the_models_names() {
        assert_eq!(setting(Some("BLOB_MOUNTING")).unwrap().2, "ENABLED");
        assert_eq!(setting(Some("REGISTRY_POLICY_SCOPE")).unwrap().1, &["V2"]);
        for bad in [None, Some(""), Some("blob_mounting"), Some("NOPE")] {
            assert!(
                matches!(setting(bad), Err(EcrError::InvalidParameter(_))),
                "{bad:?}"
            );
        }
    }
}
