//! What each IAM and STS action acts on, resolved and authorized once in dispatch, before
//! any handler runs.
//!
//! 1. [`IamOperation::target`] reads the parameters that name the target (a `match`
//!    without wildcard: a new operation does not compile until it says what it acts on).
//! 2. [`resolve`] looks the named user or group up: the ARN of an existing one carries its
//!    real path; a name that does not exist gets path `/` and is answered `NoSuchEntity`
//!    only after authorization, so a caller without the permission learns `AccessDenied`,
//!    not whether the entity exists.
//! 3. The requirements ([`AuthorizedOperation`]) are `<service>:<Action>` on that ARN, as
//!    the IAM service authorization reference names it; IAM has no resource policies.
//!
//! The handler then receives the [`Subject`] and the already-authorized caller.

use berth_access::{AuthorizedOperation, Caller, Requirement, Resource};
use berth_meta::iam::{Group, IamError, User};
use berth_meta::IamStore;

use crate::error::IamApiError;
use crate::operation::IamOperation;
use crate::params::{
    Param, Params, ACCESS_KEY_ID, GROUP_NAME, MARKER, NEW_USER_NAME, PATH, PATH_PREFIX,
    POLICY_DOCUMENT, POLICY_NAME, STATUS, USER_NAME,
};

/// What an operation acts on, as its parameters name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'p> {
    /// Nothing: `sts:GetCallerIdentity` needs no permission (in AWS not even an explicit
    /// deny stops it).
    NoPermissionNeeded,
    /// The users under a path prefix (ListUsers): `arn:aws:iam::<account>:user<prefix>`.
    UsersUnder(Option<&'p str>),
    /// A user to be created, at `path`.
    NewUser { name: &'p str, path: &'p str },
    /// A group to be created, at `path`.
    NewGroup { name: &'p str, path: &'p str },
    /// An existing user.
    User(&'p str),
    /// An existing group.
    Group(&'p str),
    /// The named user or, without a name, the caller itself (the user, or the account
    /// root when the root signs), as AWS does for GetUser and the access key actions.
    UserOrCaller(Option<&'p str>),
}

/// What the handler acts on, found by [`resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// ListUsers and GetCallerIdentity: the handler reads its own parameters.
    Parameters,
    /// The account root, acting on itself.
    Root,
    User(User),
    Group(Group),
    /// A user or group to be created with this ARN.
    New {
        name: String,
        path: String,
        arn: String,
    },
}

/// A target looked up: the ARN to authorize and what the handler then acts on.
#[derive(Debug)]
pub struct Resolved {
    /// `None` only for [`Target::NoPermissionNeeded`].
    pub arn: Option<String>,
    /// The subject, or `NoSuchEntity`, answered only once the caller is authorized.
    pub subject: Result<Subject, IamError>,
}

impl IamOperation {
    /// What the request acts on. Every parameter is checked here, before authorization,
    /// as AWS checks a request against the model before deciding it (a malformed request
    /// is `ValidationError` for every caller); the handler reads them again.
    pub fn target(self, params: &Params) -> Result<Target<'_>, IamApiError> {
        let target = self.named_target(params)?;
        self.check_other_parameters(params)?;
        Ok(target)
    }

    /// The parameters besides the target's: (required, optional, paginated).
    fn check_other_parameters(self, params: &Params) -> Result<(), IamApiError> {
        use IamOperation as Op;
        let (required, optional, paginated): (&[Param], &[Param], bool) = match self {
            Op::GetCallerIdentity
            | Op::CreateUser
            | Op::CreateGroup
            | Op::DeleteUser
            | Op::GetUser
            | Op::CreateAccessKey => (&[], &[], false),
            Op::ListUsers
            | Op::ListGroupsForUser
            | Op::ListUserPolicies
            | Op::ListGroupPolicies
            | Op::GetGroup
            | Op::ListAccessKeys => (&[], &[MARKER], true),
            Op::PutUserPolicy | Op::PutGroupPolicy => (&[POLICY_NAME, POLICY_DOCUMENT], &[], false),
            Op::GetUserPolicy
            | Op::GetGroupPolicy
            | Op::DeleteUserPolicy
            | Op::DeleteGroupPolicy => (&[POLICY_NAME], &[], false),
            // The member is named; the group is the target.
            Op::AddUserToGroup | Op::RemoveUserFromGroup => (&[USER_NAME], &[], false),
            Op::DeleteAccessKey => (&[ACCESS_KEY_ID], &[], false),
            Op::UpdateAccessKey => (&[ACCESS_KEY_ID, STATUS], &[], false),
        };
        for p in required {
            params.required(*p)?;
        }
        for p in optional {
            params.optional(*p)?;
        }
        if paginated {
            params.max_items()?;
        }
        Ok(())
    }

    /// The target, from the parameters that name it.
    fn named_target(self, params: &Params) -> Result<Target<'_>, IamApiError> {
        use IamOperation as Op;
        Ok(match self {
            Op::GetCallerIdentity => Target::NoPermissionNeeded,
            Op::ListUsers => Target::UsersUnder(params.optional(PATH_PREFIX)?),
            Op::CreateUser => Target::NewUser {
                name: params.required(NEW_USER_NAME)?,
                path: params.optional(PATH)?.unwrap_or("/"),
            },
            Op::CreateGroup => Target::NewGroup {
                name: params.required(GROUP_NAME)?,
                path: params.optional(PATH)?.unwrap_or("/"),
            },
            Op::DeleteUser
            | Op::ListGroupsForUser
            | Op::PutUserPolicy
            | Op::GetUserPolicy
            | Op::DeleteUserPolicy
            | Op::ListUserPolicies => Target::User(params.required(USER_NAME)?),
            // Membership changes act on the group, as in AWS.
            Op::GetGroup
            | Op::AddUserToGroup
            | Op::RemoveUserFromGroup
            | Op::PutGroupPolicy
            | Op::GetGroupPolicy
            | Op::DeleteGroupPolicy
            | Op::ListGroupPolicies => Target::Group(params.required(GROUP_NAME)?),
            Op::GetUser
            | Op::CreateAccessKey
            | Op::DeleteAccessKey
            | Op::ListAccessKeys
            | Op::UpdateAccessKey => Target::UserOrCaller(params.optional(USER_NAME)?),
        })
    }
}

/// Looks up what `target` names in the caller's account (the only account managed).
pub async fn resolve(
    store: &dyn IamStore,
    caller: &Caller,
    target: Target<'_>,
) -> Result<Resolved, IamApiError> {
    let account = caller.account_id.as_str();
    let new = |name: &str, path: &str, arn: String| Resolved {
        arn: Some(arn.clone()),
        subject: Ok(Subject::New {
            name: name.to_string(),
            path: path.to_string(),
            arn,
        }),
    };
    Ok(match target {
        Target::NoPermissionNeeded => Resolved {
            arn: None,
            subject: Ok(Subject::Parameters),
        },
        Target::UsersUnder(prefix) => Resolved {
            arn: Some(berth_iam::iam_user_arn(account, prefix.unwrap_or("/"), "")),
            subject: Ok(Subject::Parameters),
        },
        Target::NewUser { name, path } => {
            new(name, path, berth_iam::iam_user_arn(account, path, name))
        }
        Target::NewGroup { name, path } => {
            new(name, path, berth_iam::iam_group_arn(account, path, name))
        }
        Target::User(name) | Target::UserOrCaller(Some(name)) => user(store, account, name).await?,
        Target::UserOrCaller(None) => match &caller.user {
            Some((name, _)) => user(store, account, name).await?,
            None => Resolved {
                arn: Some(caller.arn.clone()),
                subject: Ok(Subject::Root),
            },
        },
        Target::Group(name) => group(store, account, name).await?,
    })
}

async fn user(store: &dyn IamStore, account: &str, name: &str) -> Result<Resolved, IamApiError> {
    Ok(match store.get_user(account, name).await {
        Ok(u) => Resolved {
            arn: Some(u.arn.clone()),
            subject: Ok(Subject::User(u)),
        },
        Err(e @ IamError::UserNotFound(_)) => Resolved {
            arn: Some(berth_iam::iam_user_arn(account, "/", name)),
            subject: Err(e),
        },
        Err(e) => return Err(e.into()),
    })
}

async fn group(store: &dyn IamStore, account: &str, name: &str) -> Result<Resolved, IamApiError> {
    Ok(match store.get_group(account, name).await {
        Ok(g) => Resolved {
            arn: Some(g.arn.clone()),
            subject: Ok(Subject::Group(g)),
        },
        Err(e @ IamError::GroupNotFound(_)) => Resolved {
            arn: Some(berth_iam::iam_group_arn(account, "/", name)),
            subject: Err(e),
        },
        Err(e) => return Err(e.into()),
    })
}

impl AuthorizedOperation for IamOperation {
    type Input = Resolved;
    type Error = IamApiError;

    fn iam_action(&self) -> &'static str {
        IamOperation::iam_action(*self)
    }

    /// `<service>:<Action>` on the resolved ARN, in the caller's account; nothing for
    /// [`Target::NoPermissionNeeded`].
    fn requirements(
        &self,
        input: &Resolved,
        caller: &Caller,
        _region: &str,
    ) -> Result<Vec<Requirement>, IamApiError> {
        Ok(input
            .arn
            .iter()
            .map(|arn| {
                Requirement::new(
                    IamOperation::iam_action(*self),
                    Resource::Arn {
                        account: caller.account_id.clone(),
                        arn: arn.clone(),
                    },
                )
            })
            .collect())
    }
}
