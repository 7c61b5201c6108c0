//! `Action=<Name>&Version=<date>` → [`IamOperation`].
//!
//! One enum for both services the Query edge speaks: IAM (`Version=2010-05-08`) and STS
//! (`Version=2011-06-15`). Each operation knows its service (which decides the SigV4
//! credential scope and the XML namespace), the IAM action that authorizes it, and whether
//! its response has a `<...Result>` element (the botocore model's `resultWrapper`).

use crate::error::IamApiError;

/// The service an operation belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Iam,
    Sts,
}

impl Service {
    /// The SigV4 credential scope service name and the IAM action prefix.
    pub fn name(self) -> &'static str {
        match self {
            Service::Iam => "iam",
            Service::Sts => "sts",
        }
    }

    /// The API version clients send as `Version`.
    pub fn version(self) -> &'static str {
        match self {
            Service::Iam => "2010-05-08",
            Service::Sts => "2011-06-15",
        }
    }

    /// The XML namespace of responses (the model's `xmlNamespace`).
    pub fn xml_namespace(self) -> &'static str {
        match self {
            Service::Iam => "https://iam.amazonaws.com/doc/2010-05-08/",
            Service::Sts => "https://sts.amazonaws.com/doc/2011-06-15/",
        }
    }
}

/// The IAM action prefix of a service, as a literal for `concat!`.
macro_rules! action_prefix {
    (Iam) => {
        "iam:"
    };
    (Sts) => {
        "sts:"
    };
}

macro_rules! operations {
    ($($service:ident $op:ident $result:literal),* $(,)?) => {
        /// One implemented IAM or STS action.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum IamOperation {
            $($op),*
        }

        impl IamOperation {
            /// Every implemented action.
            pub const ALL: &'static [IamOperation] = &[$(IamOperation::$op),*];

            /// The action name as sent in `Action` (`CreateUser`).
            pub fn name(self) -> &'static str {
                match self {
                    $(IamOperation::$op => stringify!($op)),*
                }
            }

            pub fn service(self) -> Service {
                match self {
                    $(IamOperation::$op => Service::$service),*
                }
            }

            /// The IAM action that authorizes it (`iam:CreateUser`, `sts:GetCallerIdentity`).
            pub fn iam_action(self) -> &'static str {
                match self {
                    $(IamOperation::$op => concat!(action_prefix!($service), stringify!($op))),*
                }
            }

            /// True when the model gives the response a `<ActionResult>` wrapper (the
            /// action has output members).
            pub fn has_result(self) -> bool {
                match self {
                    $(IamOperation::$op => $result),*
                }
            }

            /// The action named `name` (case-sensitive, as AWS).
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $(stringify!($op) => Some(IamOperation::$op),)*
                    _ => None,
                }
            }
        }
    };
}

operations! {
    Iam AddUserToGroup false,
    Iam CreateAccessKey true,
    Iam CreateGroup true,
    Iam CreateUser true,
    Iam DeleteAccessKey false,
    Iam DeleteGroupPolicy false,
    Iam DeleteUser false,
    Iam DeleteUserPolicy false,
    Iam GetGroup true,
    Iam GetGroupPolicy true,
    Iam GetUser true,
    Iam GetUserPolicy true,
    Iam ListAccessKeys true,
    Iam ListGroupPolicies true,
    Iam ListGroupsForUser true,
    Iam ListUserPolicies true,
    Iam ListUsers true,
    Iam PutGroupPolicy false,
    Iam PutUserPolicy false,
    Iam RemoveUserFromGroup false,
    Iam UpdateAccessKey false,
    Sts GetCallerIdentity true,
}

impl IamOperation {
    /// Resolves `Action` and `Version`. A missing `Version` is accepted (the action names
    /// its service); a version of the other service, or an action Berth does not implement,
    /// is `InvalidAction` as AWS answers an unknown action.
    pub fn resolve(action: Option<&str>, version: Option<&str>) -> Result<Self, IamApiError> {
        let action = match action {
            None | Some("") => return Err(IamApiError::MissingAction),
            Some(a) => a,
        };
        let invalid = || IamApiError::InvalidAction {
            action: action.to_string(),
            version: version.unwrap_or("").to_string(),
        };
        let op = IamOperation::from_name(action).ok_or_else(invalid)?;
        match version {
            Some(v) if v != op.service().version() => Err(invalid()),
            _ => Ok(op),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_resolve_with_their_service_version_only() {
        assert_eq!(
            IamOperation::resolve(Some("CreateUser"), Some("2010-05-08")).unwrap(),
            IamOperation::CreateUser
        );
        assert_eq!(
            IamOperation::resolve(Some("GetCallerIdentity"), Some("2011-06-15")).unwrap(),
            IamOperation::GetCallerIdentity
        );
        assert_eq!(
            IamOperation::resolve(Some("ListUsers"), None).unwrap(),
            IamOperation::ListUsers
        );
        assert!(matches!(
            IamOperation::resolve(Some("CreateUser"), Some("2011-06-15")),
            Err(IamApiError::InvalidAction { .. })
        ));
        assert!(matches!(
            IamOperation::resolve(Some("createuser"), Some("2010-05-08")),
            Err(IamApiError::InvalidAction { .. })
        ));
        assert!(matches!(
            IamOperation::resolve(Some("ListRoles"), Some("2010-05-08")),
            Err(IamApiError::InvalidAction { .. })
        ));
        assert!(matches!(
            IamOperation::resolve(None, Some("2010-05-08")),
            Err(IamApiError::MissingAction)
        ));
    }

    #[test]
    fn names_actions_and_services() {
        assert_eq!(IamOperation::CreateUser.iam_action(), "iam:CreateUser");
        assert_eq!(
            IamOperation::GetCallerIdentity.iam_action(),
            "sts:GetCallerIdentity"
        );
        assert!(!IamOperation::DeleteUser.has_result());
        assert!(IamOperation::GetUser.has_result());
        for op in IamOperation::ALL {
            assert_eq!(IamOperation::from_name(op.name()), Some(*op));
            assert_eq!(
                op.iam_action(),
                format!("{}:{}", op.service().name(), op.name())
            );
        }
    }

    /// The result wrappers and action names agree with the installed botocore models.
    #[test]
    fn matches_the_botocore_models_when_installed() {
        let Some(iam) = botocore_model("iam/2010-05-08") else {
            eprintln!("botocore is not installed; skipping the model comparison");
            return;
        };
        let sts = botocore_model("sts/2011-06-15").expect("sts model beside the iam model");
        for op in IamOperation::ALL {
            let model = match op.service() {
                Service::Iam => &iam,
                Service::Sts => &sts,
            };
            // The operation is in the model and has a result wrapper exactly when we say so.
            let start = model
                .find(&format!("\"{}\":{{", op.name()))
                .unwrap_or_else(|| panic!("{} is not in the model", op.name()));
            let rest = &model[start..];
            let end = rest.find("\"documentation\"").unwrap_or(rest.len());
            let wrapper = format!("\"resultWrapper\":\"{}Result\"", op.name());
            assert_eq!(
                rest[..end].contains(&wrapper),
                op.has_result(),
                "result wrapper of {}",
                op.name()
            );
        }
    }

    /// The model text with all whitespace removed, or `None` without botocore.
    fn botocore_model(rel: &str) -> Option<String> {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                &format!(
                    "import botocore, os, gzip, sys\n\
                     d = os.path.join(os.path.dirname(botocore.__file__), 'data', '{rel}', 'service-2.json')\n\
                     sys.stdout.write(gzip.open(d + '.gz').read().decode() if os.path.exists(d + '.gz') else open(d).read())"
                ),
            ])
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8(out.stdout).ok()?;
        Some(text.chars().filter(|c| !c.is_whitespace()).collect())
    }
}
