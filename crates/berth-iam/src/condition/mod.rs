//! The `Condition` element: `{ "<Operator>": { "<key>": <value or [values]> , ... }, ... }`.
//!
//! Semantics (as IAM documents them):
//! - every operator block and every key inside one must hold (AND); the values listed for one key are
//!   alternatives (OR); for a negated operator (`StringNotEquals`, `NotIpAddress`, ...) the request value must
//!   match *none* of them (NOR);
//! - a key absent from the request makes a positive operator false and a negated one true, except that
//!   `...IfExists` makes any operator true, `ForAllValues:` is true and `ForAnyValue:` false, and `Null` tests
//!   presence itself (`"true"`: the key must be absent);
//! - for a multi-valued key, `ForAnyValue:` needs one request value to satisfy the operator and `ForAllValues:`
//!   needs every one to; without a qualifier a multi-valued key behaves like `ForAnyValue:` for positive operators
//!   and like `ForAllValues:` for negated ones (no value may match).

mod date;
pub(crate) mod keys;
mod operands;
mod operator;

use serde_json::Value as Json;

use crate::error::{PolicyError, PolicyErrorKind};
use crate::request::Request;
use keys::KeyId;
use operands::Operands;
use operator::{OpKind, Operator, Qualifier};

/// A compiled `Condition` element.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    entries: Box<[Entry]>,
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    op: Operator,
    key: KeyId,
    operands: Operands,
}

impl Condition {
    /// Parses a `Condition` element. `variables`: whether `${...}` is a policy variable (version 2012-10-17).
    pub(crate) fn parse(json: &Json, variables: bool) -> Result<Condition, PolicyError> {
        let Json::Object(ops) = json else {
            return Err(PolicyError::new(PolicyErrorKind::WrongType {
                expected: "an object of condition operators",
            }));
        };
        let mut entries = Vec::new();
        for (op_name, block) in ops {
            let op = Operator::parse(op_name).ok_or_else(|| {
                PolicyError::new(PolicyErrorKind::UnknownOperator(op_name.clone()))
            })?;
            let Json::Object(keys) = block else {
                return Err(PolicyError::new(PolicyErrorKind::WrongType {
                    expected: "an object of condition keys",
                })
                .at(op_name.as_str()));
            };
            if keys.is_empty() {
                return Err(PolicyError::new(PolicyErrorKind::EmptyList).at(op_name.as_str()));
            }
            for (key_name, values) in keys {
                let at = |e: PolicyError| e.at(key_name.as_str()).at(op_name.as_str());
                let key = KeyId::parse(key_name).ok_or_else(|| {
                    at(PolicyError::new(PolicyErrorKind::InvalidConditionKey(
                        key_name.clone(),
                    )))
                })?;
                let values = scalar_list(values).map_err(at)?;
                let operands =
                    Operands::compile(op.kind, &values, variables).map_err(|(value, reason)| {
                        at(PolicyError::new(PolicyErrorKind::InvalidConditionValue {
                            operator: op_name.clone(),
                            value,
                            reason,
                        }))
                    })?;
                entries.push(Entry { op, key, operands });
            }
        }
        Ok(Condition {
            entries: entries.into(),
        })
    }

    /// Whether every operator and key holds for `req`.
    pub(crate) fn holds(&self, req: &Request<'_>) -> bool {
        self.entries.iter().all(|e| e.holds(req))
    }
}

impl Entry {
    fn holds(&self, req: &Request<'_>) -> bool {
        let found = self.key.lookup(req);
        let absent = found.is_missing();
        if self.op.kind == OpKind::Null {
            return self.operands.null_wants_absent(absent);
        }
        if absent {
            if self.op.if_exists {
                return true;
            }
            return match self.op.qualifier {
                Some(Qualifier::ForAllValues) => true,
                Some(Qualifier::ForAnyValue) => false,
                None => self.op.negated,
            };
        }
        let negated = self.op.negated;
        let matches = |v| self.operands.matches(self.op.kind, v, req);
        match self.op.qualifier {
            None => found.any(matches) != negated,
            Some(Qualifier::ForAnyValue) => found.any(|v| matches(v) != negated),
            Some(Qualifier::ForAllValues) => found.all(|v| matches(v) != negated),
        }
    }
}

/// A condition value: a string, number or boolean, or a non-empty array of them, as strings.
fn scalar_list(json: &Json) -> Result<Vec<String>, PolicyError> {
    let one = |j: &Json| match j {
        Json::String(s) => Ok(s.clone()),
        Json::Number(n) => Ok(n.to_string()),
        Json::Bool(b) => Ok(b.to_string()),
        _ => Err(PolicyError::new(PolicyErrorKind::WrongType {
            expected: "a string, number or boolean",
        })),
    };
    match json {
        Json::Array(items) if items.is_empty() => Err(PolicyError::new(PolicyErrorKind::EmptyList)),
        Json::Array(items) => items.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}
