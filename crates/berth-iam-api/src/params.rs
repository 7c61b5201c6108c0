//! The request's parameters: `application/x-www-form-urlencoded` pairs from the body of a
//! POST and from the query string (AWS accepts either, and a GET carries them only in the
//! query), checked against the botocore model's constraints with AWS's `ValidationError`
//! wording.
//!
//! SigV4's own query parameters (`X-Amz-*`, of a presigned GET) are not operation parameters
//! and are never looked up. Parameters an operation does not know are ignored.

use crate::error::IamApiError;

/// Default `MaxItems` of IAM's list operations.
pub const DEFAULT_MAX_ITEMS: usize = 100;
/// Largest `MaxItems` the model allows.
pub const MAX_MAX_ITEMS: usize = 1000;

/// The value set a parameter must match (the model's `pattern`, written out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// `[\w+=,.@-]+` (user, group and policy names).
    Name,
    /// `(\u002F)|(\u002F[\u0021-\u007E]+\u002F)`.
    Path,
    /// `\u002F[\u0021-\u007F]*`.
    PathPrefix,
    /// `[\w]+` (access key ids).
    Word,
    /// `[\u0020-\u00FF]+` (pagination markers).
    Marker,
    /// `[\u0009\u000A\u000D\u0020-\u00FF]+` (policy documents).
    PolicyDocument,
    /// One of these values.
    Enum(&'static [&'static str]),
}

impl Pattern {
    fn matches(self, v: &str) -> bool {
        let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
        match self {
            Pattern::Name => v.chars().all(|c| word(c) || "+=,.@-".contains(c)),
            Pattern::Path => {
                v == "/"
                    || (v.len() >= 3
                        && v.starts_with('/')
                        && v.ends_with('/')
                        && v.chars().all(|c| ('\u{21}'..='\u{7e}').contains(&c)))
            }
            Pattern::PathPrefix => {
                v.starts_with('/') && v.chars().all(|c| ('\u{21}'..='\u{7f}').contains(&c))
            }
            Pattern::Word => v.chars().all(word),
            Pattern::Marker => v.chars().all(|c| ('\u{20}'..='\u{ff}').contains(&c)),
            Pattern::PolicyDocument => v
                .chars()
                .all(|c| matches!(c, '\t' | '\n' | '\r') || ('\u{20}'..='\u{ff}').contains(&c)),
            Pattern::Enum(values) => values.contains(&v),
        }
    }

    fn describe(self) -> String {
        match self {
            Pattern::Name => r"Member must satisfy regular expression pattern: [\w+=,.@-]+".into(),
            Pattern::Path => {
                r"Member must satisfy regular expression pattern: (\u002F)|(\u002F[\u0021-\u007E]+\u002F)"
                    .into()
            }
            Pattern::PathPrefix => {
                r"Member must satisfy regular expression pattern: \u002F[\u0021-\u007F]*".into()
            }
            Pattern::Word => r"Member must satisfy regular expression pattern: [\w]+".into(),
            Pattern::Marker => {
                r"Member must satisfy regular expression pattern: [\u0020-\u00FF]+".into()
            }
            Pattern::PolicyDocument => {
                r"Member must satisfy regular expression pattern: [\u0009\u000A\u000D\u0020-\u00FF]+"
                    .into()
            }
            Pattern::Enum(values) => {
                format!("Member must satisfy enum value set: [{}]", values.join(", "))
            }
        }
    }
}

/// A parameter of the model: its name, length bounds and pattern.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub min: usize,
    pub max: usize,
    pub pattern: Pattern,
}

const fn param(name: &'static str, min: usize, max: usize, pattern: Pattern) -> Param {
    Param {
        name,
        min,
        max,
        pattern,
    }
}

/// `userNameType`: a user being created.
pub const NEW_USER_NAME: Param = param("UserName", 1, 64, Pattern::Name);
/// `existingUserNameType`.
pub const USER_NAME: Param = param("UserName", 1, 128, Pattern::Name);
pub const GROUP_NAME: Param = param("GroupName", 1, 128, Pattern::Name);
pub const POLICY_NAME: Param = param("PolicyName", 1, 128, Pattern::Name);
pub const PATH: Param = param("Path", 1, 512, Pattern::Path);
pub const PATH_PREFIX: Param = param("PathPrefix", 1, 512, Pattern::PathPrefix);
pub const MARKER: Param = param("Marker", 1, 320, Pattern::Marker);
pub const ACCESS_KEY_ID: Param = param("AccessKeyId", 16, 128, Pattern::Word);
pub const POLICY_DOCUMENT: Param = param("PolicyDocument", 1, 131_072, Pattern::PolicyDocument);
/// `statusType` (the model also lists `Expired`, which no caller can set).
pub const STATUS: Param = param("Status", 1, 16, Pattern::Enum(&["Active", "Inactive"]));

/// The member name as AWS names it in validation messages (`userName`).
fn member(name: &str) -> String {
    let mut c = name.chars();
    match c.next() {
        Some(f) => f.to_ascii_lowercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

/// Quotes a value for a message, shortened so a huge policy document does not fill it.
fn shown(v: &str) -> String {
    const MAX: usize = 64;
    if v.chars().count() > MAX {
        format!("{}...", v.chars().take(MAX).collect::<String>())
    } else {
        v.to_string()
    }
}

fn validation(message: String) -> IamApiError {
    IamApiError::Validation(format!("1 validation error detected: {message}"))
}

/// The decoded parameters of one request.
#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parameters from the query string, then from a form body (a name given in both counts
    /// as given in the body).
    pub fn parse(query: Option<&str>, form_body: Option<&[u8]>) -> Self {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(q) = query {
            pairs.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        if let Some(b) = form_body {
            pairs.extend(form_urlencoded::parse(b).into_owned());
        }
        Params { pairs }
    }

    /// The last value given for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `p`, checked; absent is `None`.
    pub fn optional(&self, p: Param) -> Result<Option<&str>, IamApiError> {
        let Some(v) = self.get(p.name) else {
            return Ok(None);
        };
        let at = member(p.name);
        let len = v.chars().count();
        if len < p.min {
            return Err(validation(format!(
                "Value '{}' at '{at}' failed to satisfy constraint: Member must have length greater than or equal to {}",
                shown(v),
                p.min
            )));
        }
        if len > p.max {
            return Err(validation(format!(
                "Value '{}' at '{at}' failed to satisfy constraint: Member must have length less than or equal to {}",
                shown(v),
                p.max
            )));
        }
        if !p.pattern.matches(v) {
            return Err(validation(format!(
                "Value '{}' at '{at}' failed to satisfy constraint: {}",
                shown(v),
                p.pattern.describe()
            )));
        }
        Ok(Some(v))
    }

    /// `p`, checked; absent is a `ValidationError` as AWS words it.
    pub fn required(&self, p: Param) -> Result<&str, IamApiError> {
        self.optional(p)?.ok_or_else(|| {
            validation(format!(
                "Value null at '{}' failed to satisfy constraint: Member must not be null",
                member(p.name)
            ))
        })
    }

    /// `MaxItems`: 1 to 1000, [`DEFAULT_MAX_ITEMS`] when absent.
    pub fn max_items(&self) -> Result<usize, IamApiError> {
        let Some(v) = self.get("MaxItems") else {
            return Ok(DEFAULT_MAX_ITEMS);
        };
        let n: i64 = v.trim().parse().map_err(|_| {
            validation(format!(
                "Value '{}' at 'maxItems' failed to satisfy constraint: Member must be an integer",
                shown(v)
            ))
        })?;
        if n < 1 {
            return Err(validation(format!(
                "Value '{n}' at 'maxItems' failed to satisfy constraint: Member must have value greater than or equal to 1"
            )));
        }
        if n > MAX_MAX_ITEMS as i64 {
            return Err(validation(format!(
                "Value '{n}' at 'maxItems' failed to satisfy constraint: Member must have value less than or equal to {MAX_MAX_ITEMS}"
            )));
        }
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(e: IamApiError) -> String {
        match e {
            IamApiError::Validation(m) => m,
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn parses_form_bodies_and_query_strings() {
        let p = Params::parse(
            Some("Action=GetUser&Version=2010-05-08&X-Amz-Signature=abc"),
            Some(b"UserName=a%2Bb&PolicyDocument=%7B%22a%22%3A+1%7D&Empty="),
        );
        assert_eq!(p.get("Action"), Some("GetUser"));
        assert_eq!(p.get("UserName"), Some("a+b"));
        // `+` is a space in form encoding.
        assert_eq!(p.get("PolicyDocument"), Some("{\"a\": 1}"));
        assert_eq!(p.get("Empty"), Some(""));
        assert_eq!(p.get("Missing"), None);
        // The body wins over the query string.
        let p = Params::parse(Some("UserName=q"), Some(b"UserName=b"));
        assert_eq!(p.get("UserName"), Some("b"));
    }

    #[test]
    fn required_and_optional_follow_the_model() {
        let p = Params::parse(None, Some(b"UserName=alice&Path=%2Fci%2F&Status=Inactive"));
        assert_eq!(p.required(USER_NAME).unwrap(), "alice");
        assert_eq!(p.optional(PATH).unwrap(), Some("/ci/"));
        assert_eq!(p.required(STATUS).unwrap(), "Inactive");
        assert_eq!(p.optional(GROUP_NAME).unwrap(), None);
        assert_eq!(
            msg(p.required(GROUP_NAME).unwrap_err()),
            "1 validation error detected: Value null at 'groupName' failed to satisfy constraint: Member must not be null"
        );
    }

    #[test]
    fn constraint_violations_are_validation_errors() {
        let p = Params::parse(
            None,
            Some(b"UserName=a+b&GroupName=&Path=ci%2F&AccessKeyId=AKIA&Status=Expired"),
        );
        assert_eq!(
            msg(p.required(USER_NAME).unwrap_err()),
            r"1 validation error detected: Value 'a b' at 'userName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\w+=,.@-]+"
        );
        assert!(msg(p.required(GROUP_NAME).unwrap_err())
            .contains("Member must have length greater than or equal to 1"));
        assert!(msg(p.optional(PATH).unwrap_err()).contains("'path'"));
        assert!(msg(p.required(ACCESS_KEY_ID).unwrap_err()).contains("greater than or equal to 16"));
        assert!(msg(p.required(STATUS).unwrap_err())
            .contains("Member must satisfy enum value set: [Active, Inactive]"));
        let long = format!("UserName={}", "a".repeat(65));
        let p = Params::parse(None, Some(long.as_bytes()));
        assert!(msg(p.required(NEW_USER_NAME).unwrap_err()).contains("less than or equal to 64"));
        assert!(p.required(USER_NAME).is_ok());
    }

    #[test]
    fn patterns() {
        assert!(Pattern::Path.matches("/"));
        assert!(Pattern::Path.matches("/a/b/"));
        assert!(!Pattern::Path.matches("//"));
        assert!(!Pattern::Path.matches("/a b/"));
        assert!(Pattern::PathPrefix.matches("/"));
        assert!(Pattern::PathPrefix.matches("/ci"));
        assert!(!Pattern::PathPrefix.matches("ci"));
        assert!(Pattern::Name.matches("ci-bot@team.example"));
        assert!(!Pattern::Name.matches("ci/bot"));
        assert!(Pattern::PolicyDocument.matches("{\n\t\"a\": \"é\"\r\n}"));
        assert!(!Pattern::PolicyDocument.matches("{\"a\": \"\u{0101}\"}"));
        assert!(!Pattern::Marker.matches("\u{1}"));
    }

    #[test]
    fn max_items() {
        assert_eq!(Params::default().max_items().unwrap(), DEFAULT_MAX_ITEMS);
        let p = |s: &str| Params::parse(Some(s), None).max_items();
        assert_eq!(p("MaxItems=1").unwrap(), 1);
        assert_eq!(p("MaxItems=1000").unwrap(), 1000);
        assert!(p("MaxItems=0").is_err());
        assert!(p("MaxItems=1001").is_err());
        assert!(p("MaxItems=ten").is_err());
    }
}
