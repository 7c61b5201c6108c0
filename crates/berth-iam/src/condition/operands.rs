//! The values on the policy side of a condition, parsed once for their operator (patterns, numbers, dates,
//! CIDRs, ARN patterns), and the comparison of one request value against them.

use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;

use super::date::{epoch_f64_to_nanos, parse_date};
use super::operator::OpKind;
use crate::arn_pattern::ArnPattern;
use crate::request::Value;
use crate::wildcard::{Pattern, Vars};

/// Compiled policy values; a request value matches when it matches any of them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operands {
    Str(Box<[Pattern]>),
    Num(Box<[f64]>),
    Date(Box<[i128]>),
    Bool(Box<[bool]>),
    Ip(Box<[IpNet]>),
    Arn(Box<[ArnPattern]>),
}

impl Operands {
    /// Compiles `values` for `kind`. The error is a short reason, reported with the offending value.
    pub(crate) fn compile(
        kind: OpKind,
        values: &[String],
        variables: bool,
    ) -> Result<Operands, (String, &'static str)> {
        let bad = |v: &String, why: &'static str| (v.clone(), why);
        Ok(match kind {
            OpKind::StringEquals | OpKind::StringEqualsIgnoreCase | OpKind::BinaryEquals => {
                Operands::Str(
                    values
                        .iter()
                        .map(|v| {
                            Pattern::compile(v, false, variables)
                                .map_err(|_| bad(v, "malformed policy variable"))
                        })
                        .collect::<Result<_, _>>()?,
                )
            }
            OpKind::StringLike => Operands::Str(
                values
                    .iter()
                    .map(|v| {
                        Pattern::compile(v, true, variables)
                            .map_err(|_| bad(v, "malformed policy variable"))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            OpKind::NumericEquals
            | OpKind::NumericLessThan
            | OpKind::NumericLessThanEquals
            | OpKind::NumericGreaterThan
            | OpKind::NumericGreaterThanEquals => Operands::Num(
                values
                    .iter()
                    .map(|v| parse_number(v).ok_or_else(|| bad(v, "not a number")))
                    .collect::<Result<_, _>>()?,
            ),
            OpKind::DateEquals
            | OpKind::DateLessThan
            | OpKind::DateLessThanEquals
            | OpKind::DateGreaterThan
            | OpKind::DateGreaterThanEquals => Operands::Date(
                values
                    .iter()
                    .map(|v| {
                        parse_date(v).ok_or_else(|| bad(v, "not an ISO 8601 date or epoch seconds"))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            OpKind::Bool | OpKind::Null => Operands::Bool(
                values
                    .iter()
                    .map(|v| parse_bool(v).ok_or_else(|| bad(v, "expected true or false")))
                    .collect::<Result<_, _>>()?,
            ),
            OpKind::IpAddress => Operands::Ip(
                values
                    .iter()
                    .map(|v| parse_net(v).ok_or_else(|| bad(v, "not an IP address or CIDR block")))
                    .collect::<Result<_, _>>()?,
            ),
            OpKind::ArnEquals | OpKind::ArnLike => Operands::Arn(
                values
                    .iter()
                    .map(|v| {
                        ArnPattern::strict(v, variables).map_err(|_| {
                            bad(v, "expected an ARN with six colon-separated segments")
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
        })
    }

    /// The `Null` operator's values (`true`: the key must be absent).
    pub(crate) fn null_wants_absent(&self, absent: bool) -> bool {
        match self {
            Operands::Bool(b) => b.contains(&absent),
            _ => false,
        }
    }

    /// Whether one request value matches any of the policy values (the positive sense of `kind`).
    pub(crate) fn matches<V: Vars + ?Sized>(&self, kind: OpKind, v: Value<'_>, vars: &V) -> bool {
        match self {
            Operands::Str(pats) => {
                let mut buf = StackStr::new();
                let Some(s) = as_str(v, &mut buf) else {
                    return false;
                };
                match kind {
                    OpKind::StringLike => pats.iter().any(|p| p.matches(s, false, vars)),
                    OpKind::StringEqualsIgnoreCase => {
                        pats.iter().any(|p| p.eq_ignore_case(s, vars))
                    }
                    _ => pats.iter().any(|p| p.matches(s, false, vars)),
                }
            }
            Operands::Num(nums) => {
                let Some(x) = as_number(v) else { return false };
                nums.iter().any(|&n| match kind {
                    OpKind::NumericEquals => x == n,
                    OpKind::NumericLessThan => x < n,
                    OpKind::NumericLessThanEquals => x <= n,
                    OpKind::NumericGreaterThan => x > n,
                    _ => x >= n,
                })
            }
            Operands::Date(dates) => {
                let Some(x) = as_date(v) else { return false };
                dates.iter().any(|&d| match kind {
                    OpKind::DateEquals => x == d,
                    OpKind::DateLessThan => x < d,
                    OpKind::DateLessThanEquals => x <= d,
                    OpKind::DateGreaterThan => x > d,
                    _ => x >= d,
                })
            }
            Operands::Bool(bools) => {
                let x = match v {
                    Value::Bool(b) => b,
                    Value::Str(s) => match parse_bool(s) {
                        Some(b) => b,
                        None => return false,
                    },
                    _ => return false,
                };
                bools.contains(&x)
            }
            Operands::Ip(nets) => {
                let ip = match v {
                    Value::Ip(ip) => ip,
                    Value::Str(s) => match s.trim().parse::<IpAddr>() {
                        Ok(ip) => ip,
                        Err(_) => return false,
                    },
                    _ => return false,
                };
                let ip = canonical_ip(ip);
                nets.iter().any(|n| n.contains(&ip))
            }
            Operands::Arn(arns) => match v {
                Value::Str(s) => arns.iter().any(|a| a.matches_strict(s, vars)),
                _ => false,
            },
        }
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is the IPv4 address it carries.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn parse_number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|f| f.is_finite())
}

fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Some(net.trunc());
    }
    s.parse::<IpAddr>()
        .ok()
        .map(|ip| IpNet::from(canonical_ip(ip)))
}

fn as_number(v: Value<'_>) -> Option<f64> {
    match v {
        Value::Number(n) => Some(n),
        Value::Str(s) => parse_number(s),
        Value::Time(t) => Some(t.unix_timestamp() as f64),
        _ => None,
    }
}

fn as_date(v: Value<'_>) -> Option<i128> {
    match v {
        Value::Time(t) => Some(t.unix_timestamp_nanos()),
        Value::Str(s) => parse_date(s),
        Value::Number(n) => epoch_f64_to_nanos(n),
        _ => None,
    }
}

/// The string form of a request value, formatted on the stack for non-strings.
fn as_str<'v>(v: Value<'v>, buf: &'v mut StackStr) -> Option<&'v str> {
    match v {
        Value::Str(s) => Some(s),
        Value::Bool(true) => Some("true"),
        Value::Bool(false) => Some("false"),
        Value::List(_) => None,
        Value::Number(n) => {
            write!(buf, "{n}").ok()?;
            Some(buf.as_str())
        }
        Value::Ip(ip) => {
            write!(buf, "{ip}").ok()?;
            Some(buf.as_str())
        }
        Value::Time(t) => {
            let t = t.to_offset(time::UtcOffset::UTC);
            let (y, mo, d) = (t.year(), u8::from(t.month()), t.day());
            let (h, mi, s) = (t.hour(), t.minute(), t.second());
            write!(buf, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z").ok()?;
            Some(buf.as_str())
        }
    }
}

/// A small fixed buffer to format numbers, addresses and times into without allocating.
struct StackStr {
    buf: [u8; 64],
    len: usize,
}

impl StackStr {
    fn new() -> Self {
        StackStr {
            buf: [0; 64],
            len: 0,
        }
    }

    fn as_str(&self) -> &str {
        // Only whole `&str`s are ever written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl std::fmt::Write for StackStr {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wildcard::NoVars;

    fn ops(kind: OpKind, vals: &[&str]) -> Operands {
        let vals: Vec<String> = vals.iter().map(|s| s.to_string()).collect();
        Operands::compile(kind, &vals, true).unwrap()
    }

    #[test]
    fn formats_non_strings_for_string_operators() {
        let o = ops(
            OpKind::StringEquals,
            &["10.0.0.1", "42", "2024-05-01T12:00:00Z"],
        );
        assert!(o.matches(
            OpKind::StringEquals,
            Value::Ip("10.0.0.1".parse().unwrap()),
            &NoVars
        ));
        assert!(o.matches(OpKind::StringEquals, Value::Number(42.0), &NoVars));
        let t = time::OffsetDateTime::from_unix_timestamp(1_714_564_800).unwrap();
        assert!(o.matches(OpKind::StringEquals, Value::Time(t), &NoVars));
    }

    #[test]
    fn ip_forms() {
        let o = ops(
            OpKind::IpAddress,
            &["10.1.2.3/8", "2001:db8::/32", "192.168.1.7"],
        );
        let m = |s: &str| o.matches(OpKind::IpAddress, Value::Ip(s.parse().unwrap()), &NoVars);
        assert!(m("10.200.0.1"));
        assert!(m("::ffff:10.0.0.9"));
        assert!(m("2001:db8:1::5"));
        assert!(m("192.168.1.7"));
        assert!(!m("192.168.1.8"));
        assert!(!m("2001:db9::1"));
    }

    #[test]
    fn rejects_bad_values() {
        let bad = |k, v: &str| Operands::compile(k, &[v.to_string()], true).unwrap_err().1;
        assert_eq!(bad(OpKind::NumericEquals, "ten"), "not a number");
        assert_eq!(
            bad(OpKind::DateLessThan, "soon"),
            "not an ISO 8601 date or epoch seconds"
        );
        assert_eq!(bad(OpKind::Bool, "yes"), "expected true or false");
        assert_eq!(
            bad(OpKind::IpAddress, "10.0.0.0/33"),
            "not an IP address or CIDR block"
        );
        assert_eq!(
            bad(OpKind::ArnLike, "arn:aws:iam::*"),
            "expected an ARN with six colon-separated segments"
        );
        assert_eq!(
            bad(OpKind::StringLike, "${aws:username"),
            "malformed policy variable"
        );
    }
}
