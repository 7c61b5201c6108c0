//! The implemented actions: model parameters in, the `<ActionResult>` content out.
//!
//! Authorization is `<service>:<Action>` on the resource AWS names for it (the IAM service
//! authorization reference): the user's ARN for user, key and user-policy actions, the
//! group's ARN for group actions, `arn:aws:iam::<account>:user<PathPrefix>` for ListUsers
//! (as AWS's denial message names it). The ARN of an existing entity carries its real path;
//! for a name that does not exist it is built with path `/` and authorized first, so a caller
//! without the permission learns `AccessDenied`, not whether the entity exists. The account
//! managed is always the caller's own.

mod access_keys;
mod groups;
mod policies;
mod users;

use time::OffsetDateTime;

use berth_access::{authorize, Caller, ConnInfo};
use berth_meta::iam::{Group, IamError, User};
use berth_meta::IamStore;

use crate::error::IamApiError;
use crate::operation::{IamOperation, Service};
use crate::params::Params;
use crate::xml::Xml;
use crate::IAM_SIGNING_REGION;

pub(crate) struct Ctx<'a> {
    pub store: &'a dyn IamStore,
    pub caller: &'a Caller,
    pub conn: ConnInfo,
    pub now: OffsetDateTime,
    /// The configured region (STS's `aws:RequestedRegion`).
    pub region: &'a str,
    pub params: &'a Params,
}

impl Ctx<'_> {
    fn account(&self) -> &str {
        &self.caller.account_id
    }

    fn authorize(&self, op: IamOperation, resource: &str) -> Result<(), IamApiError> {
        // IAM is global: AWS evaluates its requests in us-east-1.
        let region = match op.service() {
            Service::Iam => IAM_SIGNING_REGION,
            Service::Sts => self.region,
        };
        Ok(authorize(
            self.caller,
            &op.iam_action(),
            resource,
            self.account(),
            self.conn,
            region,
            self.now,
        )?)
    }

    /// Authorizes `op` on user `name`, then returns the user (`NoSuchEntity` if absent).
    async fn authorized_user(&self, op: IamOperation, name: &str) -> Result<User, IamApiError> {
        let found = match self.store.get_user(self.account(), name).await {
            Ok(u) => Some(u),
            Err(IamError::UserNotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let arn = match &found {
            Some(u) => u.arn.clone(),
            None => berth_iam::iam_user_arn(self.account(), "/", name),
        };
        self.authorize(op, &arn)?;
        found.ok_or_else(|| IamError::UserNotFound(name.to_string()).into())
    }

    /// Authorizes `op` on group `name`, then returns the group (`NoSuchEntity` if absent).
    async fn authorized_group(&self, op: IamOperation, name: &str) -> Result<Group, IamApiError> {
        let found = match self.store.get_group(self.account(), name).await {
            Ok(g) => Some(g),
            Err(IamError::GroupNotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let arn = match &found {
            Some(g) => g.arn.clone(),
            None => berth_iam::iam_group_arn(self.account(), "/", name),
        };
        self.authorize(op, &arn)?;
        found.ok_or_else(|| IamError::GroupNotFound(name.to_string()).into())
    }
}

/// Runs `op` and returns the content of its `<ActionResult>` (empty for actions without
/// output).
pub(crate) async fn handle(ctx: &Ctx<'_>, op: IamOperation) -> Result<Xml, IamApiError> {
    use IamOperation as Op;
    match op {
        Op::CreateUser => users::create_user(ctx).await,
        Op::DeleteUser => users::delete_user(ctx).await,
        Op::GetUser => users::get_user(ctx).await,
        Op::ListUsers => users::list_users(ctx).await,
        Op::ListGroupsForUser => users::list_groups_for_user(ctx).await,
        Op::CreateAccessKey => access_keys::create_access_key(ctx).await,
        Op::DeleteAccessKey => access_keys::delete_access_key(ctx).await,
        Op::ListAccessKeys => access_keys::list_access_keys(ctx).await,
        Op::UpdateAccessKey => access_keys::update_access_key(ctx).await,
        Op::PutUserPolicy => policies::put_policy(ctx, policies::Owner::User).await,
        Op::GetUserPolicy => policies::get_policy(ctx, policies::Owner::User).await,
        Op::DeleteUserPolicy => policies::delete_policy(ctx, policies::Owner::User).await,
        Op::ListUserPolicies => policies::list_policies(ctx, policies::Owner::User).await,
        Op::PutGroupPolicy => policies::put_policy(ctx, policies::Owner::Group).await,
        Op::GetGroupPolicy => policies::get_policy(ctx, policies::Owner::Group).await,
        Op::DeleteGroupPolicy => policies::delete_policy(ctx, policies::Owner::Group).await,
        Op::ListGroupPolicies => policies::list_policies(ctx, policies::Owner::Group).await,
        Op::CreateGroup => groups::create_group(ctx).await,
        Op::GetGroup => groups::get_group(ctx).await,
        Op::AddUserToGroup => groups::add_user_to_group(ctx).await,
        Op::RemoveUserFromGroup => groups::remove_user_from_group(ctx).await,
        Op::GetCallerIdentity => Ok(get_caller_identity(ctx)),
    }
}

/// `<User>` members (the model's `User` shape).
fn write_user(x: &mut Xml, u: &User) {
    x.text("Path", &u.path)
        .text("UserName", &u.name)
        .text("UserId", &u.user_id)
        .text("Arn", &u.arn)
        .date_ms("CreateDate", u.created_ms);
}

/// `<Group>` members (the model's `Group` shape).
fn write_group(x: &mut Xml, g: &Group) {
    x.text("Path", &g.path)
        .text("GroupName", &g.name)
        .text("GroupId", &g.group_id)
        .text("Arn", &g.arn)
        .date_ms("CreateDate", g.created_ms);
}

/// STS GetCallerIdentity: who signed the request. Needs no permission (as in AWS, where
/// even an explicit deny cannot stop it).
fn get_caller_identity(ctx: &Ctx<'_>) -> Xml {
    let c = ctx.caller;
    let user_id = match &c.user {
        Some((_, id)) => id.as_str(),
        // AWS answers the account id as the root's UserId.
        None => c.account_id.as_str(),
    };
    let mut x = Xml::new();
    x.text("UserId", user_id)
        .text("Account", &c.account_id)
        .text("Arn", &c.arn);
    x
}
