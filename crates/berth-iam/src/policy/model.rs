//! The compiled form of a policy: what evaluation walks on every request.

use super::principal::PrincipalSet;
use crate::arn_pattern::{ArnPattern, SplitArn};
use crate::condition::Condition;
use crate::wildcard::{NoVars, Pattern, Vars};

/// Where a policy is attached, which decides its grammar: identity-based policies have no `Principal` and need a
/// `Resource`; resource-based policies (ECR repository and registry policies) need a `Principal` and may leave out
/// `Resource` (the statement then applies to the resource the policy is attached to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    Identity,
    Resource,
}

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    Allow,
    Deny,
}

/// The policy language version. Policy variables exist only in 2012-10-17; a document without `Version` is
/// 2008-10-17.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyVersion {
    V2012_10_17,
    V2008_10_17,
}

/// A parsed and compiled policy document. Parse once (when it is stored or loaded) and evaluate many times.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub(crate) kind: PolicyKind,
    pub(crate) version: PolicyVersion,
    pub(crate) id: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) statements: Box<[Statement]>,
}

impl Policy {
    /// Names the policy (an inline policy's name, a managed policy's ARN); decisions and denial messages cite it.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    pub fn version(&self) -> PolicyVersion {
        self.version
    }

    /// The document's `Id` element.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The name given with [`Policy::with_name`].
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub fn statement_count(&self) -> usize {
        self.statements.len()
    }

    /// The `Sid` of statement `index`.
    pub fn statement_sid(&self, index: usize) -> Option<&str> {
        self.statements.get(index)?.sid.as_deref()
    }

    /// The `Effect` of statement `index`.
    pub fn statement_effect(&self, index: usize) -> Option<Effect> {
        self.statements.get(index).map(|s| s.effect)
    }
}

/// One compiled statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Statement {
    pub sid: Option<Box<str>>,
    pub effect: Effect,
    pub actions: Negatable<ActionPattern>,
    /// `None`: a resource-based statement without `Resource`, which covers the resource it is attached to.
    pub resources: Option<Negatable<ResourcePattern>>,
    /// `None` in identity-based policies.
    pub principals: Option<Negatable<PrincipalSet>>,
    pub condition: Option<Condition>,
}

/// An element and its `Not...` form.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Negatable<T> {
    pub items: T,
    pub not: bool,
}

/// The `Action` list, compiled.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ActionPattern {
    Any,
    /// Lists of literal action names, compared ASCII-case-insensitively, and globs.
    List {
        exact: Box<[Box<str>]>,
        globs: Box<[Pattern]>,
    },
}

impl ActionPattern {
    pub(crate) fn compile(actions: &[&str]) -> ActionPattern {
        let mut exact = Vec::new();
        let mut globs = Vec::new();
        for a in actions {
            if *a == "*" {
                return ActionPattern::Any;
            }
            // Stored lowercased, to compare with the request's action lowercased once per evaluation.
            let a = a.to_ascii_lowercase();
            // Actions have no policy variables; compile cannot fail without them.
            let p =
                Pattern::compile(&a, true, false).unwrap_or_else(|_| unreachable!("no variables"));
            match p.as_literal() {
                Some(l) => exact.push(l.into()),
                None => globs.push(p),
            }
        }
        ActionPattern::List {
            exact: exact.into(),
            globs: globs.into(),
        }
    }

    /// Case-insensitive match of `action`, given as [`ActionName`].
    pub(crate) fn matches(&self, action: &ActionName<'_>) -> bool {
        match (self, action) {
            (ActionPattern::Any, _) => true,
            (ActionPattern::List { exact, globs }, ActionName::Lower(a)) => {
                exact.iter().any(|e| **e == **a)
                    || globs.iter().any(|g| g.matches(a, false, &NoVars))
            }
            (ActionPattern::List { exact, globs }, ActionName::Mixed(a)) => {
                exact.iter().any(|e| e.eq_ignore_ascii_case(a))
                    || globs.iter().any(|g| g.matches(a, true, &NoVars))
            }
        }
    }
}

/// The request's action, ASCII-lowercased once per evaluation when it fits the stack buffer.
pub(crate) enum ActionName<'a> {
    Lower(&'a str),
    Mixed(&'a str),
}

impl<'a> ActionName<'a> {
    pub(crate) fn new(action: &'a str, buf: &'a mut [u8; 128]) -> Self {
        let Some(dst) = buf.get_mut(..action.len()) else {
            return ActionName::Mixed(action);
        };
        dst.copy_from_slice(action.as_bytes());
        dst.make_ascii_lowercase();
        // ASCII lowercasing leaves every non-ASCII byte alone, so this is still UTF-8.
        match std::str::from_utf8(dst) {
            Ok(lower) => ActionName::Lower(lower),
            Err(_) => ActionName::Mixed(action),
        }
    }
}

/// The `Resource` list, compiled.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ResourcePattern {
    Any,
    List {
        exact: Box<[Box<str>]>,
        arns: Box<[ArnPattern]>,
    },
}

impl ResourcePattern {
    pub(crate) fn matches<V: Vars + ?Sized>(&self, resource: &SplitArn<'_>, vars: &V) -> bool {
        match self {
            ResourcePattern::Any => true,
            ResourcePattern::List { exact, arns } => {
                exact.iter().any(|e| &**e == resource.as_str())
                    || arns.iter().any(|a| a.matches_resource(resource, vars))
            }
        }
    }
}
