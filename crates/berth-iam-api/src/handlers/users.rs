//! CreateUser, DeleteUser, GetUser, ListUsers, ListGroupsForUser.

use berth_meta::iam::{IamError, NewUser};

use super::{write_group, write_user, Ctx};
use crate::error::IamApiError;
use crate::operation::IamOperation;
use crate::pagination::paginate;
use crate::params::{MARKER, NEW_USER_NAME, PATH, PATH_PREFIX, USER_NAME};
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
    let name = ctx.params.required(NEW_USER_NAME)?;
    let path = ctx.params.optional(PATH)?.unwrap_or("/");
    refuse_unsupported(ctx)?;
    let arn = berth_iam::iam_user_arn(ctx.account(), path, name);
    ctx.authorize(IamOperation::CreateUser, &arn)?;
    let user = ctx
        .store
        .create_user(&NewUser {
            account_id: ctx.account().to_string(),
            name: name.to_string(),
            path: path.to_string(),
            arn,
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
    let name = ctx.params.required(USER_NAME)?;
    let user = ctx.authorized_user(IamOperation::DeleteUser, name).await?;
    // The store refuses with DeleteConflict while keys, policies or memberships remain.
    ctx.store.delete_user(ctx.account(), &user.name).await?;
    tracing::info!(user = %user.name, "deleted IAM user");
    Ok(Xml::new())
}

pub(super) async fn get_user(ctx: &Ctx<'_>) -> Result<Xml, IamApiError> {
    let mut x = Xml::new();
    x.open("User");
    match (ctx.params.optional(USER_NAME)?, &ctx.caller.user) {
        (Some(name), _) => {
            let user = ctx.authorized_user(IamOperation::GetUser, name).await?;
            write_user(&mut x, &user);
        }
        (None, Some((name, _))) => {
            let user = ctx.authorized_user(IamOperation::GetUser, name).await?;
            write_user(&mut x, &user);
        }
        // The root asking about itself: AWS answers the account id as UserId, the root
        // ARN, and the account's creation time, without a name or path.
        (None, None) => {
            let account = ctx
                .store
                .get_account(ctx.account())
                .await?
                .ok_or_else(|| IamError::AccountNotFound(ctx.account().to_string()))?;
            x.text("UserId", ctx.account())
                .text("Arn", &ctx.caller.arn)
                .date_ms("CreateDate", account.created_ms);
        }
    }
    x.close("User");
    Ok(x)
}

pub(super) async fn list_users(ctx: &Ctx<'_>) -> Result<Xml, IamApiError> {
    let prefix = ctx.params.optional(PATH_PREFIX)?;
    let marker = ctx.params.optional(MARKER)?;
    let max = ctx.params.max_items()?;
    let resource = berth_iam::iam_user_arn(ctx.account(), prefix.unwrap_or("/"), "");
    ctx.authorize(IamOperation::ListUsers, &resource)?;
    let users = ctx.store.list_users(ctx.account(), prefix).await?;
    let page = paginate(users, |u| u.name.as_str(), marker, max);
    let mut x = Xml::new();
    x.list("Users", &page.items, write_user);
    page.write_tail(&mut x);
    Ok(x)
}

pub(super) async fn list_groups_for_user(ctx: &Ctx<'_>) -> Result<Xml, IamApiError> {
    let name = ctx.params.required(USER_NAME)?;
    let marker = ctx.params.optional(MARKER)?;
    let max = ctx.params.max_items()?;
    let user = ctx
        .authorized_user(IamOperation::ListGroupsForUser, name)
        .await?;
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
