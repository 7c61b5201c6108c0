//! Condition keys: parsed once into [`KeyId`], looked up in a request without allocating.
//!
//! Key names are case-insensitive, and so are the tag keys in `aws:PrincipalTag/<key>`, `ecr:ResourceTag/<key>`,
//! `aws:ResourceTag/<key>` and `aws:RequestTag/<key>`.

use crate::request::{Request, Value};

/// A condition key, resolved at parse time so that lookups need no string comparison for the global keys.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum KeyId {
    SourceIp,
    SecureTransport,
    CurrentTime,
    EpochTime,
    RequestedRegion,
    PrincipalArn,
    PrincipalAccount,
    PrincipalType,
    Username,
    Userid,
    PrincipalTag(Box<str>),
    /// `ecr:ResourceTag/<k>` or `aws:ResourceTag/<k>`.
    ResourceTag(Box<str>),
    RequestTag(Box<str>),
    TagKeys,
    /// Any other key, looked up in [`Context::extra`](crate::Context::extra).
    Other(Box<str>),
}

impl KeyId {
    /// Parses a key name such as `aws:SourceIp`. `None` when it is not of the form `prefix:name`.
    pub(crate) fn parse(raw: &str) -> Option<KeyId> {
        let (prefix, name) = raw.split_once(':')?;
        let valid =
            |s: &str| !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control());
        if !valid(prefix) || !valid(name) {
            return None;
        }
        let tag = |p: &str| -> Option<Box<str>> {
            let (head, key) = name.split_at_checked(p.len())?;
            (head.eq_ignore_ascii_case(p) && !key.is_empty()).then(|| key.into())
        };
        if prefix.eq_ignore_ascii_case("aws") {
            let fixed = [
                ("SourceIp", KeyId::SourceIp),
                ("SecureTransport", KeyId::SecureTransport),
                ("CurrentTime", KeyId::CurrentTime),
                ("EpochTime", KeyId::EpochTime),
                ("RequestedRegion", KeyId::RequestedRegion),
                ("PrincipalArn", KeyId::PrincipalArn),
                ("PrincipalAccount", KeyId::PrincipalAccount),
                ("PrincipalType", KeyId::PrincipalType),
                ("username", KeyId::Username),
                ("userid", KeyId::Userid),
                ("TagKeys", KeyId::TagKeys),
            ];
            for (n, id) in fixed {
                if name.eq_ignore_ascii_case(n) {
                    return Some(id);
                }
            }
            if let Some(k) = tag("PrincipalTag/") {
                return Some(KeyId::PrincipalTag(k));
            }
            if let Some(k) = tag("ResourceTag/") {
                return Some(KeyId::ResourceTag(k));
            }
            if let Some(k) = tag("RequestTag/") {
                return Some(KeyId::RequestTag(k));
            }
        } else if prefix.eq_ignore_ascii_case("ecr") {
            if let Some(k) = tag("ResourceTag/") {
                return Some(KeyId::ResourceTag(k));
            }
        }
        Some(KeyId::Other(raw.into()))
    }

    /// The key's value(s) in `req`.
    pub(crate) fn lookup<'a>(&self, req: &Request<'a>) -> Found<'a> {
        let ctx = &req.context;
        let p = &req.principal;
        let opt = |v: Option<Value<'a>>| v.map_or(Found::Missing, Found::One);
        match self {
            KeyId::SourceIp => opt(ctx.source_ip.map(Value::Ip)),
            KeyId::SecureTransport => opt(ctx.secure_transport.map(Value::Bool)),
            KeyId::CurrentTime => opt(ctx.current_time.map(Value::Time)),
            KeyId::EpochTime => opt(ctx
                .current_time
                .map(|t| Value::Number(t.unix_timestamp() as f64))),
            KeyId::RequestedRegion => opt(ctx.requested_region.map(Value::Str)),
            KeyId::PrincipalArn => non_empty(p.arn, p.kind),
            KeyId::PrincipalAccount => non_empty(p.account, p.kind),
            KeyId::PrincipalType => Found::One(Value::Str(p.principal_type())),
            KeyId::Username => opt(p.user_name.map(Value::Str)),
            KeyId::Userid => opt(p.user_id.map(Value::Str)),
            KeyId::PrincipalTag(k) => tag_value(ctx.principal_tags, k),
            KeyId::ResourceTag(k) => tag_value(ctx.resource_tags, k),
            KeyId::RequestTag(k) => tag_value(ctx.request_tags, k),
            KeyId::TagKeys if !ctx.tag_keys.is_empty() => Found::Strs(ctx.tag_keys),
            KeyId::TagKeys if ctx.request_tags.is_empty() => Found::Missing,
            KeyId::TagKeys => Found::TagKeys(ctx.request_tags),
            KeyId::Other(name) => {
                match ctx.extra.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                    None => Found::Missing,
                    Some((_, Value::List(l))) => Found::Strs(l),
                    Some((_, v)) => Found::One(*v),
                }
            }
        }
    }
}

fn non_empty<'a>(s: &'a str, kind: crate::PrincipalKind) -> Found<'a> {
    if s.is_empty() || kind == crate::PrincipalKind::Anonymous {
        Found::Missing
    } else {
        Found::One(Value::Str(s))
    }
}

fn tag_value<'a>(tags: &'a [(&'a str, &'a str)], key: &str) -> Found<'a> {
    tags.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map_or(Found::Missing, |(_, v)| Found::One(Value::Str(v)))
}

/// The value(s) a key has in a request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Found<'a> {
    Missing,
    One(Value<'a>),
    Strs(&'a [&'a str]),
    /// The keys of the request tags (`aws:TagKeys`).
    TagKeys(&'a [(&'a str, &'a str)]),
}

impl<'a> Found<'a> {
    /// Absent, or an empty list: what `Null`, `...IfExists` and the set qualifiers call "not present".
    pub(crate) fn is_missing(&self) -> bool {
        match self {
            Found::Missing => true,
            Found::One(Value::List(l)) | Found::Strs(l) => l.is_empty(),
            Found::TagKeys(t) => t.is_empty(),
            Found::One(_) => false,
        }
    }

    pub(crate) fn any(&self, mut f: impl FnMut(Value<'a>) -> bool) -> bool {
        match *self {
            Found::Missing => false,
            Found::One(Value::List(l)) | Found::Strs(l) => l.iter().any(|s| f(Value::Str(s))),
            Found::One(v) => f(v),
            Found::TagKeys(t) => t.iter().any(|(k, _)| f(Value::Str(k))),
        }
    }

    pub(crate) fn all(&self, mut f: impl FnMut(Value<'a>) -> bool) -> bool {
        !self.any(|v| !f(v))
    }

    /// The value as a policy variable substitutes it: single strings and booleans only.
    pub(crate) fn as_variable(&self) -> Option<&'a str> {
        match *self {
            Found::One(Value::Str(s)) => Some(s),
            Found::One(Value::Bool(true)) => Some("true"),
            Found::One(Value::Bool(false)) => Some("false"),
            _ => None,
        }
    }
}
