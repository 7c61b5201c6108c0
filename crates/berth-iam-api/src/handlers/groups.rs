//! CreateGroup, GetGroup (with its users), AddUserToGroup, RemoveUserFromGroup.

use berth_meta::iam::NewGroup;

use super::{write_group, write_user, Ctx};
use crate::error::IamApiError;
use crate::pagination::paginate;
use crate::params::{MARKER, USER_NAME};
use crate::xml::Xml;

pub(super) async fn create_group(ctx: &Ctx<'_>) -> Result<Xml, IamApiError> {
    let (name, path, arn) = ctx.new_entity()?;
    let group = ctx
        .store
        .create_group(&NewGroup {
            account_id: ctx.account().to_string(),
            name: name.to_string(),
            path: path.to_string(),
            arn: arn.to_string(),
        })
        .await?;
    tracing::info!(group = %group.name, arn = %group.arn, "created IAM group");
    let mut x = Xml::new();
    x.open("Group");
    write_group(&mut x, &group);
    x.close("Group");
    Ok(x)
}

/// The group and a page of its members. The store has no member listing of its own, so
/// members are found through each user's groups (one query per user of the account).
pub(super) async fn get_group(ctx: &Ctx<'_>) -> Result<Xml, IamApiError> {
    let marker = ctx.params.optional(MARKER)?;
    let max = ctx.params.max_items()?;
    let group = ctx.group()?;
    let mut members = Vec::new();
    for user in ctx.store.list_users(ctx.account(), None).await? {
        let groups = ctx
            .store
            .list_groups_for_user(ctx.account(), &user.name)
            .await?;
        if groups.iter().any(|g| g.group_id == group.group_id) {
            members.push(user);
        }
    }
    let page = paginate(members, |u| u.name.as_str(), marker, max);
    let mut x = Xml::new();
    x.open("Group");
    write_group(&mut x, group);
    x.close("Group");
    x.list("Users", &page.items, write_user);
    page.write_tail(&mut x);
    Ok(x)
}

pub(super) async fn add_user_to_group(ctx: &Ctx<'_>) -> Result<Xml, IamApiError> {
    let user = ctx.params.required(USER_NAME)?;
    let group = ctx.group()?;
    ctx.store
        .add_user_to_group(ctx.account(), &group.name, user)
        .await?;
    tracing::info!(group = %group.name, user = %user, "added user to group");
    Ok(Xml::new())
}

pub(super) async fn remove_user_from_group(ctx: &Ctx<'_>) -> Result<Xml, IamApiError> {
    let user = ctx.params.required(USER_NAME)?;
    let group = ctx.group()?;
    ctx.store
        .remove_user_from_group(ctx.account(), &group.name, user)
        .await?;
    tracing::info!(group = %group.name, user = %user, "removed user from group");
    Ok(Xml::new())
}
