//! Tag mutability: PutImageTagMutability, and the validation CreateRepository shares.
//! The rule itself (four modes, wildcard exclusion filters) lives in
//! `berth_meta::tag_mutability` and is enforced by the push transaction, so the ECR API's
//! PutImage and a `/v2` manifest PUT refuse the same tag moves.

use serde::Deserialize;
use serde_json::{json, Value};

use berth_meta::tag_mutability::{self, MODES};
use berth_meta::{RepositoryRecord, RepositorySettings};

use super::{repository_name, required, Ctx};
use crate::error::EcrError;

/// The model's `ImageTagMutabilityExclusionFilter`.
#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub(super) struct ExclusionFilterInput {
    filter_type: Option<String>,
    filter: Option<String>,
}

/// Checks a mode and its filters against the model: the mode is one of the enum, the
/// `*_WITH_EXCLUSION` modes need 1 to 5 `WILDCARD` filters of `[0-9a-zA-Z._*-]{1,128}`,
/// and the plain modes take none.
pub(super) fn settings_of(
    mode: Option<String>,
    filters: Option<Vec<ExclusionFilterInput>>,
) -> Result<RepositorySettings, EcrError> {
    let mode = mode.unwrap_or_else(|| tag_mutability::MUTABLE.to_string());
    if !MODES.contains(&mode.as_str()) {
        return Err(EcrError::InvalidParameter(format!(
            "Invalid parameter at 'imageTagMutability' failed to satisfy constraint: 'Member must satisfy enum value set: [MUTABLE, IMMUTABLE, IMMUTABLE_WITH_EXCLUSION, MUTABLE_WITH_EXCLUSION]' (got '{mode}')"
        )));
    }
    let filters = match (tag_mutability::takes_filters(&mode), filters) {
        (false, None) => Vec::new(),
        (false, Some(_)) => {
            return Err(EcrError::InvalidParameter(format!(
                "imageTagMutabilityExclusionFilters can only be used with IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION, not {mode}"
            )))
        }
        (true, None) => {
            return Err(EcrError::InvalidParameter(format!(
                "imageTagMutabilityExclusionFilters are required with {mode}"
            )))
        }
        (true, Some(list)) => {
            if !(1..=5).contains(&list.len()) {
                return Err(EcrError::InvalidParameter(
                    "Invalid parameter at 'imageTagMutabilityExclusionFilters' failed to satisfy constraint: 'Member must have length between 1 and 5'".into(),
                ));
            }
            list.into_iter()
                .map(check_filter)
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    Ok(RepositorySettings {
        image_tag_mutability: mode,
        image_tag_mutability_exclusion_filters: filters,
    })
}

fn check_filter(f: ExclusionFilterInput) -> Result<String, EcrError> {
    let filter_type = required(
        &f.filter_type,
        "imageTagMutabilityExclusionFilters.member.filterType",
    )?;
    if filter_type != "WILDCARD" {
        return Err(EcrError::InvalidParameter(format!(
            "Invalid parameter at 'filterType' failed to satisfy constraint: 'Member must satisfy enum value set: [WILDCARD]' (got '{filter_type}')"
        )));
    }
    let filter = required(
        &f.filter,
        "imageTagMutabilityExclusionFilters.member.filter",
    )?;
    let ok = (1..=128).contains(&filter.len())
        && filter
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'*' | b'-'));
    if !ok {
        return Err(EcrError::InvalidParameter(format!(
            "Invalid parameter at 'filter' failed to satisfy constraint: 'Member must satisfy regular expression pattern: ^[0-9a-zA-Z._*-]{{1,128}}$' (got '{filter}')"
        )));
    }
    Ok(filter.to_string())
}

/// The model's `imageTagMutabilityExclusionFilters` of a repository (absent when none).
pub(super) fn filters_json(r: &RepositoryRecord) -> Option<Value> {
    (!r.image_tag_mutability_exclusion_filters.is_empty()).then(|| {
        r.image_tag_mutability_exclusion_filters
            .iter()
            .map(|f| json!({"filterType": "WILDCARD", "filter": f}))
            .collect()
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PutImageTagMutabilityInput {
    registry_id: Option<String>,
    repository_name: Option<String>,
    image_tag_mutability: Option<String>,
    image_tag_mutability_exclusion_filters: Option<Vec<ExclusionFilterInput>>,
}

pub(super) async fn put_image_tag_mutability(
    ctx: &Ctx<'_>,
    input: PutImageTagMutabilityInput,
) -> Result<Value, EcrError> {
    let name = required(&input.repository_name, "repositoryName")?;
    required(&input.image_tag_mutability, "imageTagMutability")?;
    let registry = ctx.registry(input.registry_id.as_deref())?;
    let repo = repository_name(&registry, name)?;
    let settings = settings_of(
        input.image_tag_mutability,
        input.image_tag_mutability_exclusion_filters,
    )?;
    let record = ctx
        .state
        .inner
        .registry
        .repository_store()
        .set_tag_mutability(&repo, &settings)
        .await
        .map_err(|e| EcrError::from_meta(e, &registry))?;
    let mut out = json!({
        "registryId": registry,
        "repositoryName": record.name,
        "imageTagMutability": record.image_tag_mutability,
    });
    if let Some(f) = filters_json(&record) {
        out["imageTagMutabilityExclusionFilters"] = f;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(t: &str, v: &str) -> ExclusionFilterInput {
        ExclusionFilterInput {
            filter_type: Some(t.into()),
            filter: Some(v.into()),
        }
    }

    #[test]
    fn modes_and_filters_follow_the_model() {
        let s = settings_of(None, None).unwrap();
        assert_eq!(s.image_tag_mutability, "MUTABLE");
        let s = settings_of(Some("IMMUTABLE".into()), None).unwrap();
        assert!(s.image_tag_mutability_exclusion_filters.is_empty());
        let s = settings_of(
            Some("IMMUTABLE_WITH_EXCLUSION".into()),
            Some(vec![f("WILDCARD", "latest"), f("WILDCARD", "dev-*")]),
        )
        .unwrap();
        assert_eq!(
            s.image_tag_mutability_exclusion_filters,
            vec!["latest", "dev-*"]
        );
        let bad: Vec<(Option<&str>, Option<Vec<ExclusionFilterInput>>)> = vec![
            (Some("mutable"), None),
            (Some("SOMETIMES"), None),
            (Some("IMMUTABLE"), Some(vec![f("WILDCARD", "x")])),
            (Some("MUTABLE"), Some(vec![])),
            (Some("IMMUTABLE_WITH_EXCLUSION"), None),
            (Some("MUTABLE_WITH_EXCLUSION"), Some(vec![])),
            (
                Some("MUTABLE_WITH_EXCLUSION"),
                Some((0..6).map(|i| f("WILDCARD", &format!("t{i}"))).collect()),
            ),
            (Some("MUTABLE_WITH_EXCLUSION"), Some(vec![f("REGEX", "x")])),
            (
                Some("MUTABLE_WITH_EXCLUSION"),
                Some(vec![f("WILDCARD", "")]),
            ),
            (
                Some("MUTABLE_WITH_EXCLUSION"),
                Some(vec![f("WILDCARD", "a/b")]),
            ),
            (
                Some("MUTABLE_WITH_EXCLUSION"),
                Some(vec![f("WILDCARD", "a b")]),
            ),
            (
                Some("MUTABLE_WITH_EXCLUSION"),
                Some(vec![f("WILDCARD", &"a".repeat(129))]),
            ),
            (
                Some("MUTABLE_WITH_EXCLUSION"),
                Some(vec![ExclusionFilterInput {
                    filter_type: None,
                    filter: Some("x".into()),
                }]),
            ),
        ];
        for (mode, filters) in bad {
            let dbg = format!("{mode:?} {filters:?}");
            assert!(
                matches!(
                    settings_of(mode.map(str::to_string), filters),
                    Err(EcrError::InvalidParameter(_))
                ),
                "{dbg}"
            );
        }
    }
}
