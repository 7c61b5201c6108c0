//! Policy evaluation with AWS semantics, and the AWS-style denial message.
//!
//! 1. Every statement of every applicable policy that matches the request (action, resource, principal,
//!    condition) is found. A matching `Deny` anywhere is an explicit deny and decides at once.
//! 2. The account root in its own account is allowed (it cannot be restricted by identity-based policies; an
//!    explicit deny in a resource-based policy still binds it, step 1).
//! 3. Same account (IAM user or role): allowed when an identity-based policy allows, or when a resource-based
//!    policy allows *naming the caller itself* (its ARN or `*`). A resource-based grant to the account
//!    (`123456789012` / `arn:aws:iam::123456789012:root`) delegates to the account's IAM and adds nothing.
//! 4. Cross account: both an identity-based allow in the caller's account and a resource-based allow naming the
//!    caller or its account. The root of another account counts as having the identity-based allow.
//! 5. Anonymous and service callers: a resource-based allow naming them (`*`, or the service).
//! 6. Otherwise: implicit deny.

use std::fmt;

use crate::arn_pattern::SplitArn;
use crate::policy::model::{ActionName, Negatable, Statement};
use crate::policy::principal::PrincipalMatch;
use crate::policy::{Effect, Policy};
use crate::request::{PrincipalKind, Request};

/// Which slot of the [`Request`] a policy came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicySource {
    /// One of [`Request::identity_policies`].
    Identity,
    /// [`Request::resource_policy`] (the repository policy).
    Resource,
    /// [`Request::registry_policy`].
    Registry,
}

impl PolicySource {
    /// "identity-based" or "resource-based", as AWS words it.
    pub fn aws_kind(self) -> &'static str {
        match self {
            PolicySource::Identity => "identity-based",
            PolicySource::Resource | PolicySource::Registry => "resource-based",
        }
    }
}

/// A statement that took part in a decision.
#[derive(Debug, Clone, Copy)]
pub struct StatementRef<'a> {
    pub source: PolicySource,
    pub policy: &'a Policy,
    /// Index of the statement in the policy's `Statement` array.
    pub index: usize,
}

impl<'a> StatementRef<'a> {
    pub fn sid(&self) -> Option<&'a str> {
        self.policy.statement_sid(self.index)
    }
}

impl fmt::Display for StatementRef<'_> {
    /// `identity-based policy "name" statement "Sid"`; `#index` stands in for a missing name or Sid.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.source {
            PolicySource::Identity => "identity-based policy",
            PolicySource::Resource => "resource-based policy",
            PolicySource::Registry => "registry policy",
        };
        f.write_str(label)?;
        match (self.policy.name(), self.policy.id()) {
            (Some(n), _) | (None, Some(n)) => write!(f, " \"{n}\"")?,
            (None, None) => {}
        }
        match self.sid() {
            Some(sid) => write!(f, " statement \"{sid}\""),
            None => write!(f, " statement #{}", self.index),
        }
    }
}

/// Why a decision came out the way it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Allowed: the account root acting on its own account's resource.
    AccountRoot,
    /// Allowed by an identity-based policy (same account).
    IdentityPolicyAllows,
    /// Allowed by a resource-based policy naming the caller (same account, anonymous or service callers).
    ResourcePolicyAllows,
    /// Allowed cross-account: the caller's identity-based policy and the resource's policy both allow.
    CrossAccountAllows,
    /// Denied by a `Deny` statement.
    ExplicitDeny,
    /// Denied: no identity-based policy allows (and, same account, no resource-based policy names the caller).
    NoIdentityPolicyAllows,
    /// Denied: no resource-based policy allows (cross-account, anonymous and service callers need one).
    NoResourcePolicyAllows,
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    pub reason: Reason,
    /// The deciding statement: the `Deny` for an explicit deny; for an allow, the identity-based `Allow` if one
    /// took part, else the resource-based one. `None` for the root rule and implicit denies.
    pub statement: Option<StatementRef<'a>>,
    /// For a cross-account allow, the resource-based `Allow` that granted the other half.
    pub resource_statement: Option<StatementRef<'a>>,
}

impl Decision<'_> {
    pub fn is_allowed(&self) -> bool {
        matches!(
            self.reason,
            Reason::AccountRoot
                | Reason::IdentityPolicyAllows
                | Reason::ResourcePolicyAllows
                | Reason::CrossAccountAllows
        )
    }

    pub fn is_explicit_deny(&self) -> bool {
        self.reason == Reason::ExplicitDeny
    }

    /// The message AWS puts in an `AccessDenied` error, or `None` when allowed:
    /// `User: <arn> is not authorized to perform: <action> on resource: <arn> because no identity-based policy
    /// allows the <action> action`, or `... with an explicit deny in an identity-based policy` (followed by
    /// `: <policy name>` when the policy has one).
    pub fn denial_message(&self, req: &Request<'_>) -> Option<String> {
        let head = format!(
            "User: {} is not authorized to perform: {} on resource: {}",
            req.principal.arn, req.action, req.resource
        );
        match self.reason {
            Reason::ExplicitDeny => {
                let st = self.statement?;
                let article = if st.source == PolicySource::Identity {
                    "an"
                } else {
                    "a"
                };
                let mut msg = format!(
                    "{head} with an explicit deny in {article} {} policy",
                    st.source.aws_kind()
                );
                if let Some(name) = st.policy.name() {
                    msg.push_str(": ");
                    msg.push_str(name);
                }
                Some(msg)
            }
            Reason::NoIdentityPolicyAllows => Some(format!(
                "{head} because no identity-based policy allows the {} action",
                req.action
            )),
            Reason::NoResourcePolicyAllows => Some(format!(
                "{head} because no resource-based policy allows the {} action",
                req.action
            )),
            _ => None,
        }
    }
}

impl fmt::Display for Decision<'_> {
    /// A one-line explanation for logs: `allowed by identity-based policy "p" statement "S"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.is_allowed() {
            "allowed"
        } else {
            "denied"
        };
        match (self.reason, self.statement) {
            (Reason::AccountRoot, _) => write!(f, "{verdict}: account root"),
            (Reason::ExplicitDeny, Some(st)) => write!(f, "{verdict}: explicit deny in {st}"),
            (Reason::NoIdentityPolicyAllows, _) => {
                write!(f, "{verdict}: no identity-based policy allows")
            }
            (Reason::NoResourcePolicyAllows, _) => {
                write!(f, "{verdict}: no resource-based policy allows")
            }
            (_, Some(st)) => {
                write!(f, "{verdict} by {st}")?;
                match self.resource_statement {
                    Some(r) => write!(f, " and {r}"),
                    None => Ok(()),
                }
            }
            (_, None) => write!(f, "{verdict}"),
        }
    }
}

/// Decides `req`. Allocates nothing.
pub fn evaluate<'a>(req: &Request<'a>) -> Decision<'a> {
    let resource = SplitArn::new(req.resource);
    let mut action_buf = [0u8; 128];
    let action = ActionName::new(req.action, &mut action_buf);
    let mut identity_allow = None;
    let mut resource_direct = None;
    let mut resource_account = None;

    let resource_policies = [
        (PolicySource::Resource, req.resource_policy),
        (PolicySource::Registry, req.registry_policy),
    ];
    let identity = req
        .identity_policies
        .iter()
        .map(|p| (PolicySource::Identity, *p));
    let all = identity.chain(
        resource_policies
            .into_iter()
            .filter_map(|(s, p)| p.map(|p| (s, p))),
    );
    for (source, policy) in all {
        for (index, st) in policy.statements.iter().enumerate() {
            let Some(pm) = applies(st, req, &action, &resource) else {
                continue;
            };
            let here = StatementRef {
                source,
                policy,
                index,
            };
            match (st.effect, source, pm) {
                (Effect::Deny, _, _) => {
                    return Decision {
                        reason: Reason::ExplicitDeny,
                        statement: Some(here),
                        resource_statement: None,
                    }
                }
                (Effect::Allow, PolicySource::Identity, _) => {
                    identity_allow.get_or_insert(here);
                }
                (Effect::Allow, _, PrincipalMatch::Account) => {
                    resource_account.get_or_insert(here);
                }
                (Effect::Allow, _, _) => {
                    resource_direct.get_or_insert(here);
                }
            }
        }
    }

    let p = &req.principal;
    let same_account = !p.account.is_empty() && p.account == req.resource_account;
    let decide = |reason, statement, resource_statement| Decision {
        reason,
        statement,
        resource_statement,
    };
    match p.kind {
        PrincipalKind::Root if same_account => decide(Reason::AccountRoot, None, None),
        PrincipalKind::Root => match resource_direct.or(resource_account) {
            Some(r) => decide(Reason::CrossAccountAllows, Some(r), None),
            None => decide(Reason::NoResourcePolicyAllows, None, None),
        },
        PrincipalKind::Anonymous | PrincipalKind::Service => match resource_direct {
            Some(r) => decide(Reason::ResourcePolicyAllows, Some(r), None),
            None => decide(Reason::NoResourcePolicyAllows, None, None),
        },
        PrincipalKind::User | PrincipalKind::Role if same_account => {
            match (identity_allow, resource_direct) {
                (Some(i), _) => decide(Reason::IdentityPolicyAllows, Some(i), None),
                (None, Some(r)) => decide(Reason::ResourcePolicyAllows, Some(r), None),
                (None, None) => decide(Reason::NoIdentityPolicyAllows, None, None),
            }
        }
        PrincipalKind::User | PrincipalKind::Role => {
            match (identity_allow, resource_direct.or(resource_account)) {
                (Some(i), Some(r)) => decide(Reason::CrossAccountAllows, Some(i), Some(r)),
                (None, _) => decide(Reason::NoIdentityPolicyAllows, None, None),
                (Some(_), None) => decide(Reason::NoResourcePolicyAllows, None, None),
            }
        }
    }
}

/// Whether `st` applies to `req`, and if so how its principal element names the caller (identity-based
/// statements name their holder directly).
fn applies(
    st: &Statement,
    req: &Request<'_>,
    action: &ActionName<'_>,
    resource: &SplitArn<'_>,
) -> Option<PrincipalMatch> {
    let Negatable {
        items: actions,
        not,
    } = &st.actions;
    if actions.matches(action) == *not {
        return None;
    }
    let pm = match &st.principals {
        None => PrincipalMatch::Direct,
        Some(Negatable { items, not: true }) if items.exempts(&req.principal) => return None,
        Some(Negatable { not: true, .. }) => PrincipalMatch::Direct,
        Some(Negatable { items, not: false }) => match items.matches(&req.principal) {
            PrincipalMatch::No => return None,
            m => m,
        },
    };
    if let Some(Negatable { items, not }) = &st.resources {
        if items.matches(resource, req) == *not {
            return None;
        }
    }
    if let Some(c) = &st.condition {
        if !c.holds(req) {
            return None;
        }
    }
    Some(pm)
}
