//! CreateUser, DeleteUser, GetUser, ListUsers, ListGroupsForUser.

use berth_meta::iam::{IamError, NewUser};

use super::{write_group, write_user, Ctx};
use crate::error::IamApiError;
use crate::pagination::paginate;
use crate::params::{MARKER, PATH_PREFIX};
use crate::requirements::Subject;
use crate::xml::Xml;

/// Refuses what Berth would otherwise silently drop: a permissions boundary (it would not
/// be enforced) and tags (they would not be kept).
fn refuse_unsupported(ctx: &Ctx<'_>) -> Result<(), IamApiError> {
    if ctx.params.get("PermissionsBoundary").is_some() {
        return Err(IamApiError::InvalidInput(
            "Permissions boundaries are not supported by this Berth version.".into(),
        ));
    }
    if ctx.params.get("Tags.member.1.Key").is_some() {
        return Err(IamApiError::InvalidInput(
            "Tags on IAM entities are not supported by this Berth version.".into(),
        ));
    }
    Ok(())
}

pub(super) async fn create_user(ctx: &Ctx<'_>) -> Result<Xml, IamApiError> {
    refuse_unsupported(ctx)?;
    let (name, path, arn) = ctx.new_entity()?;
    let user = ctx
        .store
        .create_user(&NewUser {
            account_id: ctx.account().to_string(),
            name: name.to_string(),
            path: path.to_string(),
            arn: arn.to_string(),
        })
        .await?;
    tracing::info!(user = %user.name, arn = %user.arn, "created IAM user");
    let mut x = Xml::new();
    x.open("User");
    write_user(&mut x, &user);
    x.close("User");
    Ok(x)
}

pub(super) async fn delete_user(ctx: &Ctx<'_>) -> Result<Xml, IamApiError> {
    let user = ctx.user()?;
    // The store refuses with DeleteConflict while keys, policies or memberships remain.
    ctx.store.delete_user(ctx.account(), &user.name).await?;
    tracing::info!(user = %user.name, "deleted IAM user");
    Ok(Xml::new())
}

pub(super) async fn get_user(ctx: &Ctx<'_>) -> Result<Xml, IamApiError> {
    let mut x = Xml::new();
    x.open("User");
    match ctx.subject {
        // The root asking about itself: AWS answers the account id as UserId, the root
        // ARN, and the account's creation time, without a name or path.
        Subject::Root => {
            let account = ctx
                .store
                .get_account(ctx.account())
                .await?
                .ok_or_else(|| IamError::AccountNotFound(ctx.account().to_string()))?;
            x.text("UserId", ctx.account())
                .text("Arn", &ctx.caller.arn)
                .date_ms("CreateDate", account.created_ms);
        }
        // The named user, or the signing user itself.
        _ => write_user(&mut x, ctx.user()?),
    }
    x.close("User");
    Ok(x)
}

pub(super) async fn list_users(ctx: &Ctx<'_>) -> Result<Xml, IamApiError> {
    let prefix = ctx.params.optional(PATH_PREFIX)?;
    let marker = ctx.params.optional(MARKER)?;
    let max = ctx.params.max_items()?;
    let users = ctx.store.list_users(ctx.account(), prefix).await?;
    let page = paginate(users, |u| u.name.as_str(), marker, max);
    let mut x = Xml::new();
    x.list("Users", &page.items, write_user);
    page.write_tail(&mut x);
    Ok(x)
}

pub(super) async fn list_groups_for_user(ctx: &Ctx<'_>) -> Result<Xml, IamApiError> {
    let marker = ctx.params.optional(MARKER)?;
    let max = ctx.params.max_items()?;
    let user = ctx.user()?;
    let groups = ctx
        .store
        .list_groups_for_user(ctx.account(), &user.name)
        .await?;
    let page = paginate(groups, |g| g.name.as_str(), marker, max);
    let mut x = Xml::new();
    x.list("Groups", &page.items, write_group);
    page.write_tail(&mut x);
    Ok(x)
}
