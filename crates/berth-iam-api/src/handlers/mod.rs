//! The implemented actions: model parameters in, the `<ActionResult>` content out.
//!
//! Handlers do not authorize: dispatch has resolved what the operation acts on and
//! authorized it ([`crate::requirements`]) before a handler runs, and hands it the
//! [`Subject`]. The account managed is always the caller's own.

mod access_keys;
mod groups;
mod policies;
mod users;

use berth_access::Caller;
use berth_meta::iam::{Group, KeyOwner, User};
use berth_meta::IamStore;

use crate::error::IamApiError;
use crate::operation::IamOperation;
use crate::params::Params;
use crate::requirements::Subject;
use crate::xml::Xml;

pub(crate) struct Ctx<'a> {
    pub store: &'a dyn IamStore,
    /// The caller, already authorized for the operation on [`Ctx::subject`].
    pub caller: &'a Caller,
    pub params: &'a Params,
    pub subject: &'a Subject,
}

impl Ctx<'_> {
    fn account(&self) -> &str {
        &self.caller.account_id
    }

    /// The operation's declaration and its handler disagree: a bug of this crate.
    fn unexpected(&self, wanted: &str) -> IamApiError {
        IamApiError::Internal(format!("wanted {wanted}, resolved {:?}", self.subject))
    }

    /// The existing user the operation acts on.
    fn user(&self) -> Result<&User, IamApiError> {
        match self.subject {
            Subject::User(u) => Ok(u),
            _ => Err(self.unexpected("a user")),
        }
    }

    /// The existing group the operation acts on.
    fn group(&self) -> Result<&Group, IamApiError> {
        match self.subject {
            Subject::Group(g) => Ok(g),
            _ => Err(self.unexpected("a group")),
        }
    }

    /// The name, path and ARN of the user or group to create.
    fn new_entity(&self) -> Result<(&str, &str, &str), IamApiError> {
        match self.subject {
            Subject::New { name, path, arn } => Ok((name, path, arn)),
            _ => Err(self.unexpected("a new entity")),
        }
    }

    /// Whose access keys: the named user's, or the caller's own (the root's when the root
    /// signs without `UserName`).
    fn key_owner(&self) -> Result<KeyOwner, IamApiError> {
        match self.subject {
            Subject::Root => Ok(KeyOwner::Root),
            Subject::User(u) => Ok(KeyOwner::User(u.name.clone())),
            _ => Err(self.unexpected("a key owner")),
        }
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
