//! Condition operator names: `[ForAnyValue:|ForAllValues:]<Operator>[IfExists]`, matched case-insensitively.

/// The comparison an operator makes, without its negation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    NumericEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    BinaryEquals,
    IpAddress,
    ArnEquals,
    ArnLike,
    Null,
}

/// The set qualifiers for multi-valued keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Qualifier {
    ForAnyValue,
    ForAllValues,
}

/// A parsed operator name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Operator {
    pub kind: OpKind,
    /// `StringNotEquals`, `NotIpAddress`, ...: true when the value matches none of the policy's values.
    pub negated: bool,
    /// `...IfExists`: true when the key is absent.
    pub if_exists: bool,
    pub qualifier: Option<Qualifier>,
}

const NAMES: &[(&str, OpKind, bool)] = &[
    ("StringEquals", OpKind::StringEquals, false),
    ("StringNotEquals", OpKind::StringEquals, true),
    (
        "StringEqualsIgnoreCase",
        OpKind::StringEqualsIgnoreCase,
        false,
    ),
    (
        "StringNotEqualsIgnoreCase",
        OpKind::StringEqualsIgnoreCase,
        true,
    ),
    ("StringLike", OpKind::StringLike, false),
    ("StringNotLike", OpKind::StringLike, true),
    ("NumericEquals", OpKind::NumericEquals, false),
    ("NumericNotEquals", OpKind::NumericEquals, true),
    ("NumericLessThan", OpKind::NumericLessThan, false),
    (
        "NumericLessThanEquals",
        OpKind::NumericLessThanEquals,
        false,
    ),
    ("NumericGreaterThan", OpKind::NumericGreaterThan, false),
    (
        "NumericGreaterThanEquals",
        OpKind::NumericGreaterThanEquals,
        false,
    ),
    ("DateEquals", OpKind::DateEquals, false),
    ("DateNotEquals", OpKind::DateEquals, true),
    ("DateLessThan", OpKind::DateLessThan, false),
    ("DateLessThanEquals", OpKind::DateLessThanEquals, false),
    ("DateGreaterThan", OpKind::DateGreaterThan, false),
    (
        "DateGreaterThanEquals",
        OpKind::DateGreaterThanEquals,
        false,
    ),
    ("Bool", OpKind::Bool, false),
    ("BinaryEquals", OpKind::BinaryEquals, false),
    ("IpAddress", OpKind::IpAddress, false),
    ("NotIpAddress", OpKind::IpAddress, true),
    ("ArnEquals", OpKind::ArnEquals, false),
    ("ArnNotEquals", OpKind::ArnEquals, true),
    ("ArnLike", OpKind::ArnLike, false),
    ("ArnNotLike", OpKind::ArnLike, true),
    ("Null", OpKind::Null, false),
];

impl Operator {
    /// `None` for an unknown name (including `Null` with `IfExists` or a set qualifier, which mean nothing).
    pub(crate) fn parse(name: &str) -> Option<Operator> {
        let (qualifier, rest) = if let Some(r) = strip_prefix_ci(name, "ForAnyValue:") {
            (Some(Qualifier::ForAnyValue), r)
        } else if let Some(r) = strip_prefix_ci(name, "ForAllValues:") {
            (Some(Qualifier::ForAllValues), r)
        } else {
            (None, name)
        };
        let (base, if_exists) = match strip_suffix_ci(rest, "IfExists") {
            Some(b) => (b, true),
            None => (rest, false),
        };
        let &(_, kind, negated) = NAMES
            .iter()
            .find(|(n, _, _)| n.eq_ignore_ascii_case(base))?;
        if kind == OpKind::Null && (if_exists || qualifier.is_some()) {
            return None;
        }
        Some(Operator {
            kind,
            negated,
            if_exists,
            qualifier,
        })
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let (head, rest) = s.split_at_checked(prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then_some(rest)
}

fn strip_suffix_ci<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let (rest, tail) = s.split_at_checked(s.len().checked_sub(suffix.len())?)?;
    tail.eq_ignore_ascii_case(suffix).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        let op = Operator::parse("ForAllValues:StringNotLikeIfExists").unwrap();
        assert_eq!(op.kind, OpKind::StringLike);
        assert!(op.negated && op.if_exists);
        assert_eq!(op.qualifier, Some(Qualifier::ForAllValues));
        assert_eq!(
            Operator::parse("notipaddress").unwrap().kind,
            OpKind::IpAddress
        );
        assert!(Operator::parse("StringEqualz").is_none());
        assert!(Operator::parse("NullIfExists").is_none());
        assert!(Operator::parse("ForAnyValue:Null").is_none());
        assert!(Operator::parse("IfExists").is_none());
    }
}
