//! Inline policies of users and groups: Put/Get/Delete/List{User,Group}Polic{y,ies}.
//!
//! A document is checked with berth-iam before it is stored, as an identity-based policy
//! (a `Principal`, an unknown field, a bad action or ARN → `MalformedPolicyDocument` with
//! berth-iam's message naming the statement and field). Size is IAM's quota on the sum of
//! one owner's inline policies, whitespace not counted (2,048 characters for a user, 5,120
//! for a group) → `LimitExceeded`. Two concurrent puts to one owner may together pass the
//! quota by at most one document: the check reads, then the store writes.

use berth_iam::{limits, non_whitespace_chars, Policy, PolicyErrorKind, PolicyKind, SizeLimit};

use super::Ctx;
use crate::error::IamApiError;
use crate::pagination::paginate;
use crate::params::{MARKER, POLICY_DOCUMENT, POLICY_NAME};
use crate::xml::{encode_policy_document, Xml};

/// Who inline policies are attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    User,
    Group,
}

impl Owner {
    fn word(self) -> &'static str {
        match self {
            Owner::User => "user",
            Owner::Group => "group",
        }
    }

    /// Characters (whitespace not counted) of all the owner's inline policies together.
    fn quota(self) -> usize {
        match self {
            Owner::User => limits::IAM_USER_INLINE_POLICY_MAX_CHARS,
            Owner::Group => limits::IAM_GROUP_INLINE_POLICY_MAX_CHARS,
        }
    }

    fn size_limit(self) -> SizeLimit {
        SizeLimit::NonWhitespaceChars(self.quota())
    }

    /// The stored name of the user or group the operation acts on.
    fn name(self, ctx: &Ctx<'_>) -> Result<String, IamApiError> {
        Ok(match self {
            Owner::User => ctx.user()?.name.clone(),
            Owner::Group => ctx.group()?.name.clone(),
        })
    }

    async fn list(self, ctx: &Ctx<'_>, owner: &str) -> Result<Vec<String>, IamApiError> {
        Ok(match self {
            Owner::User => ctx.store.list_user_policies(ctx.account(), owner).await?,
            Owner::Group => ctx.store.list_group_policies(ctx.account(), owner).await?,
        })
    }

    async fn get(self, ctx: &Ctx<'_>, owner: &str, name: &str) -> Result<String, IamApiError> {
        Ok(match self {
            Owner::User => {
                ctx.store
                    .get_user_policy(ctx.account(), owner, name)
                    .await?
            }
            Owner::Group => {
                ctx.store
                    .get_group_policy(ctx.account(), owner, name)
                    .await?
            }
        })
    }
}

fn too_large(owner: Owner, name: &str) -> IamApiError {
    IamApiError::LimitExceeded(format!(
        "Maximum policy size of {} bytes exceeded for {} {name}",
        owner.quota(),
        owner.word()
    ))
}

pub(super) async fn put_policy(ctx: &Ctx<'_>, owner: Owner) -> Result<Xml, IamApiError> {
    let policy_name = ctx.params.required(POLICY_NAME)?;
    let document = ctx.params.required(POLICY_DOCUMENT)?;
    let owner_name = owner.name(ctx)?;
    if let Err(e) = Policy::parse(document, PolicyKind::Identity, owner.size_limit()) {
        use PolicyErrorKind as K;
        return Err(match e.kind {
            K::TooLarge { .. } => too_large(owner, &owner_name),
            // Every other refusal is about the document's text or grammar.
            K::Json(_)
            | K::JsonLimits(_)
            | K::WrongType { .. }
            | K::UnknownField(_)
            | K::MissingField(_)
            | K::Conflict(..)
            | K::InvalidVersion(_)
            | K::InvalidEffect(_)
            | K::NoStatements
            | K::InvalidSid(_)
            | K::DuplicateSid(_)
            | K::PrincipalInIdentityPolicy
            | K::MissingPrincipal
            | K::NotPrincipalWithAllow
            | K::InvalidPrincipal(_)
            | K::UnsupportedPrincipalType(_)
            | K::InvalidAction(_)
            | K::InvalidResource(_)
            | K::InvalidArn(_)
            | K::UnknownOperator(_)
            | K::InvalidConditionKey(_)
            | K::InvalidConditionValue { .. }
            | K::InvalidVariable(_)
            | K::EmptyList => IamApiError::MalformedPolicyDocument(e.to_string()),
        });
    }
    let mut total = non_whitespace_chars(document);
    for other in owner.list(ctx, &owner_name).await? {
        if other != policy_name {
            total += non_whitespace_chars(&owner.get(ctx, &owner_name, &other).await?);
        }
    }
    if total > owner.quota() {
        return Err(too_large(owner, &owner_name));
    }
    match owner {
        Owner::User => {
            ctx.store
                .put_user_policy(ctx.account(), &owner_name, policy_name, document)
                .await?
        }
        Owner::Group => {
            ctx.store
                .put_group_policy(ctx.account(), &owner_name, policy_name, document)
                .await?
        }
    }
    tracing::info!(owner = owner.word(), name = %owner_name, policy = %policy_name, "put inline policy");
    Ok(Xml::new())
}

pub(super) async fn get_policy(ctx: &Ctx<'_>, owner: Owner) -> Result<Xml, IamApiError> {
    let policy_name = ctx.params.required(POLICY_NAME)?;
    let owner_name = owner.name(ctx)?;
    let document = owner.get(ctx, &owner_name, policy_name).await?;
    let mut x = Xml::new();
    match owner {
        Owner::User => x.text("UserName", &owner_name),
        Owner::Group => x.text("GroupName", &owner_name),
    };
    x.text("PolicyName", policy_name)
        .text("PolicyDocument", &encode_policy_document(&document));
    Ok(x)
}

pub(super) async fn delete_policy(ctx: &Ctx<'_>, owner: Owner) -> Result<Xml, IamApiError> {
    let policy_name = ctx.params.required(POLICY_NAME)?;
    let owner_name = owner.name(ctx)?;
    match owner {
        Owner::User => {
            ctx.store
                .delete_user_policy(ctx.account(), &owner_name, policy_name)
                .await?
        }
        Owner::Group => {
            ctx.store
                .delete_group_policy(ctx.account(), &owner_name, policy_name)
                .await?
        }
    }
    tracing::info!(owner = owner.word(), name = %owner_name, policy = %policy_name, "deleted inline policy");
    Ok(Xml::new())
}

pub(super) async fn list_policies(ctx: &Ctx<'_>, owner: Owner) -> Result<Xml, IamApiError> {
    let marker = ctx.params.optional(MARKER)?;
    let max = ctx.params.max_items()?;
    let owner_name = owner.name(ctx)?;
    let names = owner.list(ctx, &owner_name).await?;
    let page = paginate(names, |n| n.as_str(), marker, max);
    let mut x = Xml::new();
    x.list("PolicyNames", &page.items, |x, n| {
        x.escaped(n);
    });
    page.write_tail(&mut x);
    Ok(x)
}
