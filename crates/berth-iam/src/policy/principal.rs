//! The `Principal` / `NotPrincipal` element of resource-based policies, and matching a caller against it.
//!
//! Accepted forms: `"*"`, `{"AWS": "*"}`, `{"AWS": "<12-digit account>"}`, `{"AWS": "arn:aws:iam::<acct>:root"}`,
//! user and role ARNs (`arn:aws:iam::<acct>:user/...`, `...:role/...`, `arn:aws:sts::<acct>:assumed-role/...`),
//! `{"Service": "<name>"}`, each value a string or an array. Wildcards other than a lone `*` are not allowed.

use serde_json::Value as Json;

use crate::arn::{is_account_id, Arn};
use crate::error::{PolicyError, PolicyErrorKind};
use crate::request::{Principal, PrincipalKind};

/// A compiled `Principal` element.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PrincipalSet {
    any: bool,
    accounts: Box<[Box<str>]>,
    arns: Box<[Box<str>]>,
    services: Box<[Box<str>]>,
}

/// How a `Principal` element names a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PrincipalMatch {
    No,
    /// Through the caller's account (`123456789012` or `arn:aws:iam::123456789012:root`): the account delegates
    /// to its own IAM, so for an IAM user or role the caller's identity-based policies must allow too.
    Account,
    /// The caller itself (its ARN, `*`, or the account root naming itself).
    Direct,
}

impl PrincipalSet {
    pub(crate) fn parse(json: &Json) -> Result<PrincipalSet, PolicyError> {
        let mut set = PrincipalSet::default();
        let (mut accounts, mut arns, mut services) = (Vec::new(), Vec::new(), Vec::new());
        match json {
            Json::String(s) if s == "*" => set.any = true,
            Json::String(s) => {
                return Err(PolicyError::new(PolicyErrorKind::InvalidPrincipal(
                    s.clone(),
                )))
            }
            Json::Object(map) if map.is_empty() => {
                return Err(PolicyError::new(PolicyErrorKind::EmptyList))
            }
            Json::Object(map) => {
                for (ty, values) in map {
                    let values =
                        crate::policy::parse::string_list(values).map_err(|e| e.at(ty.as_str()))?;
                    let invalid = |v: &str| {
                        PolicyError::new(PolicyErrorKind::InvalidPrincipal(v.to_owned()))
                            .at(ty.as_str())
                    };
                    match ty.as_str() {
                        "AWS" => {
                            for v in values {
                                if v == "*" {
                                    set.any = true;
                                } else if is_account_id(v) {
                                    accounts.push(v.into());
                                } else {
                                    let arn = Arn::parse(v).map_err(|_| invalid(v))?;
                                    if arn.account.is_empty() || v.contains(['*', '?']) {
                                        return Err(invalid(v));
                                    }
                                    if arn.is_account_root() {
                                        accounts.push(arn.account.into());
                                    } else if is_identity(&arn) {
                                        arns.push(v.into());
                                    } else {
                                        return Err(invalid(v));
                                    }
                                }
                            }
                        }
                        "Service" => {
                            for v in values {
                                if v.is_empty()
                                    || v.contains(['*', '?'])
                                    || v.contains(char::is_whitespace)
                                {
                                    return Err(invalid(v));
                                }
                                services.push(v.into());
                            }
                        }
                        other => {
                            return Err(PolicyError::new(
                                PolicyErrorKind::UnsupportedPrincipalType(other.to_owned()),
                            ))
                        }
                    }
                }
            }
            _ => {
                return Err(PolicyError::new(PolicyErrorKind::WrongType {
                    expected: "\"*\" or an object such as {\"AWS\": ...}",
                }))
            }
        }
        set.accounts = accounts.into();
        set.arns = arns.into();
        set.services = services.into();
        Ok(set)
    }

    /// How this `Principal` element names `p`.
    pub(crate) fn matches(&self, p: &Principal<'_>) -> PrincipalMatch {
        if self.any {
            return PrincipalMatch::Direct;
        }
        let has = |list: &[Box<str>], s: &str| list.iter().any(|x| &**x == s);
        match p.kind {
            PrincipalKind::Anonymous => PrincipalMatch::No,
            PrincipalKind::Service if has(&self.services, p.arn) => PrincipalMatch::Direct,
            PrincipalKind::Service => PrincipalMatch::No,
            PrincipalKind::Root if has(&self.accounts, p.account) => PrincipalMatch::Direct,
            PrincipalKind::Root => PrincipalMatch::No,
            PrincipalKind::User | PrincipalKind::Role => {
                if has(&self.arns, p.arn) {
                    PrincipalMatch::Direct
                } else if has(&self.accounts, p.account) {
                    PrincipalMatch::Account
                } else {
                    PrincipalMatch::No
                }
            }
        }
    }

    /// Whether a `NotPrincipal` element exempts `p`. AWS checks the caller's account and then the caller, so an
    /// IAM user or role is exempt only when both its own ARN and its account are listed (as AWS advises).
    pub(crate) fn exempts(&self, p: &Principal<'_>) -> bool {
        if self.any {
            return true;
        }
        let has = |list: &[Box<str>], s: &str| list.iter().any(|x| &**x == s);
        match p.kind {
            PrincipalKind::Anonymous => false,
            PrincipalKind::Service => has(&self.services, p.arn),
            PrincipalKind::Root => has(&self.accounts, p.account),
            PrincipalKind::User | PrincipalKind::Role => {
                has(&self.arns, p.arn) && has(&self.accounts, p.account)
            }
        }
    }
}

fn is_identity(arn: &Arn<'_>) -> bool {
    match arn.service {
        "iam" => arn.resource.starts_with("user/") || arn.resource.starts_with("role/"),
        "sts" => {
            arn.resource.starts_with("assumed-role/") || arn.resource.starts_with("federated-user/")
        }
        _ => false,
    }
}
