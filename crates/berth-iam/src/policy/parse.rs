//! Parsing and validating a policy document (the IAM JSON grammar) into its compiled form.

use std::collections::HashSet;

use serde_json::{Map, Value as Json};

use super::limits::SizeLimit;
use super::model::{
    ActionPattern, Effect, Negatable, Policy, PolicyKind, PolicyVersion, ResourcePattern, Statement,
};
use super::principal::PrincipalSet;
use crate::arn_pattern::{ArnPattern, BadArnPattern};
use crate::condition::Condition;
use crate::error::{PolicyError, PolicyErrorKind as K};
use crate::wildcard::Pattern;

const TOP_FIELDS: &[&str] = &["Version", "Id", "Statement"];
const STATEMENT_FIELDS: &[&str] = &[
    "Sid",
    "Effect",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Principal",
    "NotPrincipal",
    "Condition",
];

impl Policy {
    /// Parses and validates a policy document of `kind`, rejecting it when it exceeds `limit`.
    ///
    /// ```
    /// use berth_iam::{Policy, PolicyKind, SizeLimit};
    /// let p = Policy::parse(
    ///     r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecr:*","Resource":"*"}}"#,
    ///     PolicyKind::Identity,
    ///     SizeLimit::IAM_USER_INLINE_POLICY,
    /// ).unwrap();
    /// assert_eq!(p.statement_count(), 1);
    /// ```
    pub fn parse(text: &str, kind: PolicyKind, limit: SizeLimit) -> Result<Policy, PolicyError> {
        limit.check(text)?;
        berth_types::json_limits::check(text.as_bytes(), berth_types::JsonLimits::DOCUMENT)
            .map_err(|e| PolicyError::new(K::JsonLimits(e)))?;
        let json: Json =
            serde_json::from_str(text).map_err(|e| PolicyError::new(K::Json(e.to_string())))?;
        let Json::Object(top) = json else {
            return Err(PolicyError::new(K::WrongType {
                expected: "a JSON object",
            }));
        };
        unknown_fields(&top, TOP_FIELDS)?;
        let version = match top.get("Version") {
            None => PolicyVersion::V2008_10_17,
            Some(Json::String(v)) if v == "2012-10-17" => PolicyVersion::V2012_10_17,
            Some(Json::String(v)) if v == "2008-10-17" => PolicyVersion::V2008_10_17,
            Some(Json::String(v)) => {
                return Err(PolicyError::new(K::InvalidVersion(v.clone())).at("Version"))
            }
            Some(_) => {
                return Err(PolicyError::new(K::WrongType {
                    expected: "a string",
                })
                .at("Version"))
            }
        };
        let id = match top.get("Id") {
            None => None,
            Some(Json::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(PolicyError::new(K::WrongType {
                    expected: "a string",
                })
                .at("Id"))
            }
        };
        let raw: Vec<&Json> = match top.get("Statement") {
            None => return Err(PolicyError::new(K::MissingField("Statement"))),
            Some(Json::Array(items)) => items.iter().collect(),
            Some(obj @ Json::Object(_)) => vec![obj],
            Some(_) => {
                return Err(PolicyError::new(K::WrongType {
                    expected: "an object or an array of objects",
                })
                .at("Statement"))
            }
        };
        if raw.is_empty() {
            return Err(PolicyError::new(K::NoStatements).at("Statement"));
        }
        let mut sids = HashSet::new();
        let mut statements = Vec::with_capacity(raw.len());
        for (index, json) in raw.into_iter().enumerate() {
            let st = parse_statement(json, kind, version)
                .map_err(|(e, sid)| e.in_statement(index, sid.as_deref()))?;
            if let Some(sid) = &st.sid {
                if !sids.insert(sid.clone()) {
                    return Err(PolicyError::new(K::DuplicateSid(sid.to_string()))
                        .at("Sid")
                        .in_statement(index, Some(sid)));
                }
            }
            statements.push(st);
        }
        Ok(Policy {
            kind,
            version,
            id,
            name: None,
            statements: statements.into(),
        })
    }
}

/// A string or a non-empty array of strings.
pub(crate) fn string_list(json: &Json) -> Result<Vec<&str>, PolicyError> {
    let wrong = || {
        PolicyError::new(K::WrongType {
            expected: "a string or an array of strings",
        })
    };
    match json {
        Json::String(s) => Ok(vec![s]),
        Json::Array(items) if items.is_empty() => Err(PolicyError::new(K::EmptyList)),
        Json::Array(items) => items.iter().map(|i| i.as_str().ok_or_else(wrong)).collect(),
        _ => Err(wrong()),
    }
}

fn unknown_fields(obj: &Map<String, Json>, allowed: &[&str]) -> Result<(), PolicyError> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(PolicyError::new(K::UnknownField(k.clone())).at(k.as_str())),
        None => Ok(()),
    }
}

/// On error, also returns the statement's Sid (when readable) for the error's location.
fn parse_statement(
    json: &Json,
    kind: PolicyKind,
    version: PolicyVersion,
) -> Result<Statement, (PolicyError, Option<String>)> {
    let Json::Object(obj) = json else {
        return Err((
            PolicyError::new(K::WrongType {
                expected: "a statement object",
            }),
            None,
        ));
    };
    let sid = obj.get("Sid").and_then(Json::as_str).map(str::to_owned);
    statement_body(obj, kind, version).map_err(|e| (e, sid))
}

fn statement_body(
    obj: &Map<String, Json>,
    kind: PolicyKind,
    version: PolicyVersion,
) -> Result<Statement, PolicyError> {
    let variables = version == PolicyVersion::V2012_10_17;
    unknown_fields(obj, STATEMENT_FIELDS)?;
    let sid = match obj.get("Sid") {
        None => None,
        Some(Json::String(s)) => {
            // IAM allows only ASCII letters and digits in identity policies; resource policies are freer.
            if kind == PolicyKind::Identity && !s.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(PolicyError::new(K::InvalidSid(s.clone())).at("Sid"));
            }
            Some(s.as_str().into())
        }
        Some(_) => {
            return Err(PolicyError::new(K::WrongType {
                expected: "a string",
            })
            .at("Sid"))
        }
    };
    let effect = match obj.get("Effect") {
        None => return Err(PolicyError::new(K::MissingField("Effect"))),
        Some(Json::String(e)) if e == "Allow" => Effect::Allow,
        Some(Json::String(e)) if e == "Deny" => Effect::Deny,
        Some(Json::String(e)) => {
            return Err(PolicyError::new(K::InvalidEffect(e.clone())).at("Effect"))
        }
        Some(_) => {
            return Err(PolicyError::new(K::WrongType {
                expected: "\"Allow\" or \"Deny\"",
            })
            .at("Effect"))
        }
    };

    let actions = match pick(obj, "Action", "NotAction")? {
        None => return Err(PolicyError::new(K::MissingField("Action"))),
        Some((field, json, not)) => {
            let list = string_list(json).map_err(|e| e.at(field))?;
            for a in &list {
                if !valid_action(a) {
                    return Err(PolicyError::new(K::InvalidAction((*a).to_owned())).at(field));
                }
            }
            Negatable {
                items: ActionPattern::compile(&list),
                not,
            }
        }
    };

    let resources = match pick(obj, "Resource", "NotResource")? {
        None if kind == PolicyKind::Identity => {
            return Err(PolicyError::new(K::MissingField("Resource")))
        }
        None => None,
        Some((field, json, not)) => {
            let list = string_list(json).map_err(|e| e.at(field))?;
            Some(Negatable {
                items: compile_resources(&list, variables).map_err(|e| e.at(field))?,
                not,
            })
        }
    };

    let principals = match (kind, pick(obj, "Principal", "NotPrincipal")?) {
        (PolicyKind::Identity, None) => None,
        (PolicyKind::Identity, Some((field, _, _))) => {
            return Err(PolicyError::new(K::PrincipalInIdentityPolicy).at(field))
        }
        (PolicyKind::Resource, None) => return Err(PolicyError::new(K::MissingPrincipal)),
        (PolicyKind::Resource, Some((field, _, true))) if effect == Effect::Allow => {
            return Err(PolicyError::new(K::NotPrincipalWithAllow).at(field))
        }
        (PolicyKind::Resource, Some((field, json, not))) => Some(Negatable {
            items: PrincipalSet::parse(json).map_err(|e| e.at(field))?,
            not,
        }),
    };

    let condition = match obj.get("Condition") {
        None => None,
        Some(json) => Some(Condition::parse(json, variables).map_err(|e| e.at("Condition"))?),
    };

    Ok(Statement {
        sid,
        effect,
        actions,
        resources,
        principals,
        condition,
    })
}

/// The element present among `name` and `not_name`: (field, value, is-the-Not-form). Both present is an error.
fn pick<'j>(
    obj: &'j Map<String, Json>,
    name: &'static str,
    not_name: &'static str,
) -> Result<Option<(&'static str, &'j Json, bool)>, PolicyError> {
    match (obj.get(name), obj.get(not_name)) {
        (Some(_), Some(_)) => Err(PolicyError::new(K::Conflict(name, not_name))),
        (Some(j), None) => Ok(Some((name, j, false))),
        (None, Some(j)) => Ok(Some((not_name, j, true))),
        (None, None) => Ok(None),
    }
}

/// `*`, or `service:action` where the action may use `*` and `?`.
fn valid_action(a: &str) -> bool {
    if a == "*" {
        return true;
    }
    let Some((service, action)) = a.split_once(':') else {
        return false;
    };
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '*' | '?');
    !service.is_empty() && !action.is_empty() && service.chars().all(ok) && action.chars().all(ok)
}

fn compile_resources(list: &[&str], variables: bool) -> Result<ResourcePattern, PolicyError> {
    let mut exact = Vec::new();
    let mut arns = Vec::new();
    for r in list {
        if *r == "*" {
            return Ok(ResourcePattern::Any);
        }
        let arn = ArnPattern::resource(r, variables).map_err(|e| match e {
            BadArnPattern::Shape => PolicyError::new(K::InvalidResource((*r).to_owned())),
            BadArnPattern::Variable => PolicyError::new(K::InvalidVariable((*r).to_owned())),
        })?;
        check_account_segment(r)?;
        let literal = Pattern::compile(r, true, variables)
            .ok()
            .and_then(|p| p.as_literal().map(Box::<str>::from));
        match literal {
            Some(l) => exact.push(l),
            None => arns.push(arn),
        }
    }
    Ok(ResourcePattern::List {
        exact: exact.into(),
        arns: arns.into(),
    })
}

/// A literal account segment must be empty or a 12-digit account id.
fn check_account_segment(r: &str) -> Result<(), PolicyError> {
    if let Some(segs) = crate::arn::split_segments(r) {
        let acct = segs[4];
        let literal = !acct.contains(['*', '?', '$']);
        if literal && !acct.is_empty() && !crate::arn::is_account_id(acct) {
            return Err(PolicyError::new(K::InvalidArn(r.to_owned())));
        }
    }
    Ok(())
}
