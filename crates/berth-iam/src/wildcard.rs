//! Compiled string patterns: literals, the wildcards `*` (any run of characters, including none) and `?` (exactly
//! one character), and policy variables `${key}` / `${key, 'default'}` with the escapes `${*}`, `${?}`, `${$}`.
//!
//! Matching allocates nothing: variables are substituted on the fly, and the glob matcher is the classic linear
//! two-pointer algorithm (a later `*` always subsumes an earlier one, so one backtrack point suffices), which is
//! O(pattern × input) in the worst case instead of exponential.

use crate::condition::keys::KeyId;

/// Resolves policy variables.
pub(crate) trait Vars {
    fn var(&self, key: &KeyId) -> Option<&str>;
}

/// A resolver for patterns compiled without variables.
pub(crate) struct NoVars;

impl Vars for NoVars {
    fn var(&self, _: &KeyId) -> Option<&str> {
        None
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Lit(Box<str>),
    Star,
    One,
    Var {
        key: KeyId,
        default: Option<Box<str>>,
    },
}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pattern {
    tokens: Box<[Token]>,
}

/// Why a pattern did not compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadVariable;

impl Pattern {
    /// Compiles `src`. With `wildcards` false, `*` and `?` are literal characters; with `variables` false (policy
    /// version 2008-10-17), `${...}` is literal text.
    // Offsets come from `find` of ASCII delimiters and `len_utf8` steps: always character boundaries.
    #[allow(clippy::string_slice)]
    pub(crate) fn compile(
        src: &str,
        wildcards: bool,
        variables: bool,
    ) -> Result<Pattern, BadVariable> {
        let mut tokens = Vec::new();
        let mut lit = String::new();
        let mut rest = src;
        while let Some(c) = rest.chars().next() {
            if variables && rest.starts_with("${") {
                let end = rest.find('}').ok_or(BadVariable)?;
                let body = &rest[2..end];
                rest = &rest[end + 1..];
                match body {
                    "*" | "?" | "$" => lit.push_str(body),
                    _ => {
                        flush(&mut tokens, &mut lit);
                        tokens.push(parse_variable(body)?);
                    }
                }
                continue;
            }
            rest = &rest[c.len_utf8()..];
            match c {
                '*' if wildcards => {
                    flush(&mut tokens, &mut lit);
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                }
                '?' if wildcards => {
                    flush(&mut tokens, &mut lit);
                    tokens.push(Token::One);
                }
                _ => lit.push(c),
            }
        }
        flush(&mut tokens, &mut lit);
        Ok(Pattern {
            tokens: tokens.into(),
        })
    }

    /// True for the pattern `*`, which matches everything.
    #[cfg(test)]
    pub(crate) fn is_any(&self) -> bool {
        matches!(&*self.tokens, [Token::Star])
    }

    /// The pattern's text when it is a plain literal (no wildcard, no variable).
    pub(crate) fn as_literal(&self) -> Option<&str> {
        match &*self.tokens {
            [] => Some(""),
            [Token::Lit(l)] => Some(l),
            _ => None,
        }
    }

    pub(crate) fn ends_with_star(&self) -> bool {
        matches!(self.tokens.last(), Some(Token::Star))
    }

    /// Splits at literal colons into at most `max` segments (the last keeps any further colons). Colons inside
    /// variables (`${aws:username}`) do not split.
    // Offsets come from `find(':')`: always character boundaries.
    #[allow(clippy::string_slice)]
    pub(crate) fn split_colons(&self, max: usize) -> Vec<Pattern> {
        let mut segs = Vec::new();
        let mut cur: Vec<Token> = Vec::new();
        for t in self.tokens.iter() {
            let Token::Lit(l) = t else {
                cur.push(t.clone());
                continue;
            };
            let mut text: &str = l;
            while segs.len() + 1 < max {
                let Some(i) = text.find(':') else { break };
                if i > 0 {
                    cur.push(Token::Lit(text[..i].into()));
                }
                segs.push(Pattern {
                    tokens: std::mem::take(&mut cur).into(),
                });
                text = &text[i + 1..];
            }
            if !text.is_empty() {
                cur.push(Token::Lit(text.into()));
            }
        }
        segs.push(Pattern { tokens: cur.into() });
        segs
    }

    /// Glob match of the whole of `s`; `ci` compares ASCII letters case-insensitively (IAM action names).
    // `si` only advances by `len_utf8` of a decoded character or by a matched prefix: always a character boundary.
    #[allow(clippy::string_slice)]
    pub(crate) fn matches<V: Vars + ?Sized>(&self, s: &str, ci: bool, vars: &V) -> bool {
        let toks = &*self.tokens;
        // Fast paths for the most common shapes: ``, `*`, `literal` and `literal*`.
        match toks {
            [] => return s.is_empty(),
            [Token::Star] => return true,
            [Token::Lit(l)] => return prefix(s, 0, l, ci) == Some(s.len()),
            [Token::Lit(l), Token::Star] => return prefix(s, 0, l, ci).is_some(),
            _ => {}
        }
        let (mut ti, mut si) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        loop {
            if ti < toks.len() {
                let advanced = match &toks[ti] {
                    Token::Star if ti + 1 == toks.len() => return true,
                    Token::Star => {
                        star = Some((ti + 1, si));
                        ti += 1;
                        continue;
                    }
                    Token::One => match s[si..].chars().next() {
                        Some(c) => {
                            si += c.len_utf8();
                            true
                        }
                        None => false,
                    },
                    Token::Lit(l) => prefix(s, si, l, ci).inspect(|&n| si += n).is_some(),
                    Token::Var { key, default } => {
                        let Some(v) = vars.var(key).or(default.as_deref()) else {
                            return false;
                        };
                        prefix(s, si, v, ci).inspect(|&n| si += n).is_some()
                    }
                };
                if advanced {
                    ti += 1;
                    continue;
                }
            } else if si == s.len() {
                return true;
            }
            // Mismatch: let the last `*` swallow one more character and retry from just after it.
            match star {
                Some((sti, ssi)) if ssi < s.len() => {
                    let next = ssi + s[ssi..].chars().next().map_or(1, char::len_utf8);
                    star = Some((sti, next));
                    ti = sti;
                    si = next;
                }
                _ => return false,
            }
        }
    }

    /// Whole-string equality ignoring case (Unicode lowercase), for `StringEqualsIgnoreCase`.
    pub(crate) fn eq_ignore_case<V: Vars + ?Sized>(&self, s: &str, vars: &V) -> bool {
        for t in self.tokens.iter() {
            if let Token::Var { key, default } = t {
                if vars.var(key).or(default.as_deref()).is_none() {
                    return false;
                }
            }
        }
        let a = self
            .tokens
            .iter()
            .flat_map(|t| token_text(t, vars).chars())
            .flat_map(char::to_lowercase);
        a.eq(s.chars().flat_map(char::to_lowercase))
    }
}

/// A token as text (variables substituted; wildcards as their characters).
fn token_text<'t, V: Vars + ?Sized>(t: &'t Token, vars: &'t V) -> &'t str {
    match t {
        Token::Lit(l) => l,
        Token::Star => "*",
        Token::One => "?",
        Token::Var { key, default } => vars.var(key).or(default.as_deref()).unwrap_or(""),
    }
}

/// Bytes of `lit` matched at `s[at..]`, if it matches there.
fn prefix(s: &str, at: usize, lit: &str, ci: bool) -> Option<usize> {
    let hay = s.as_bytes().get(at..at + lit.len())?;
    let same = if ci {
        hay.eq_ignore_ascii_case(lit.as_bytes())
    } else {
        hay == lit.as_bytes()
    };
    same.then_some(lit.len())
}

fn flush(tokens: &mut Vec<Token>, lit: &mut String) {
    if !lit.is_empty() {
        tokens.push(Token::Lit(std::mem::take(lit).into()));
    }
}

/// `key` or `key, 'default'`.
fn parse_variable(body: &str) -> Result<Token, BadVariable> {
    let (key, default) = match body.split_once(',') {
        None => (body.trim(), None),
        Some((k, d)) => {
            let d = d.trim();
            let d = d
                .strip_prefix('\'')
                .and_then(|d| d.strip_suffix('\''))
                .ok_or(BadVariable)?;
            (k.trim(), Some(d.into()))
        }
    };
    let key = KeyId::parse(key).ok_or(BadVariable)?;
    Ok(Token::Var { key, default })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(p: &str, s: &str) -> bool {
        Pattern::compile(p, true, false)
            .unwrap()
            .matches(s, false, &NoVars)
    }

    #[test]
    fn star_and_question() {
        assert!(glob("*", ""));
        assert!(glob("*", "anything:at/all"));
        assert!(glob("a*c", "abbbc"));
        assert!(glob("a*c", "ac"));
        assert!(!glob("a*c", "abcd"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!glob("*a*b*c*", "xxcxxbxxaxx"));
        assert!(glob("h?llö*", "hällö wörld"));
        assert!(!glob("abc", "ABC"));
    }

    #[test]
    fn case_insensitive_ascii() {
        let p = Pattern::compile("ecr:Get*", true, false).unwrap();
        assert!(p.matches("ECR:getdownloadurlforlayer", true, &NoVars));
        assert!(!p.matches("ECR:getdownloadurlforlayer", false, &NoVars));
    }

    #[test]
    fn pathological_pattern_is_fast() {
        let p = Pattern::compile(&"*a".repeat(50), true, false).unwrap();
        let s = "a".repeat(5000) + "b";
        assert!(!p.matches(&s, false, &NoVars));
    }

    #[test]
    fn variables_and_escapes() {
        assert_eq!(
            Pattern::compile("${*}${?}${$}", true, true)
                .unwrap()
                .as_literal(),
            Some("*?$")
        );
        assert_eq!(
            Pattern::compile("${aws:username}", true, false)
                .unwrap()
                .as_literal(),
            Some("${aws:username}")
        );
        assert!(Pattern::compile("${aws:username", true, true).is_err());
        assert!(Pattern::compile("${nocolon}", true, true).is_err());
        assert!(Pattern::compile("${aws:username, unquoted}", true, true).is_err());
        let p = Pattern::compile("home/${aws:username, 'nobody'}/*", true, true).unwrap();
        assert!(p.matches("home/nobody/x", false, &NoVars));
    }

    #[test]
    fn split_on_literal_colons_only() {
        let p = Pattern::compile(
            "arn:aws:ecr:*:${aws:PrincipalAccount}:repository/a:b",
            true,
            true,
        )
        .unwrap();
        let segs = p.split_colons(6);
        assert_eq!(segs.len(), 6);
        assert_eq!(segs[0].as_literal(), Some("arn"));
        assert!(segs[3].is_any());
        assert_eq!(segs[5].as_literal(), Some("repository/a:b"));
    }

    #[test]
    fn ignore_case_unicode() {
        let p = Pattern::compile("ÄBC", false, false).unwrap();
        assert!(p.eq_ignore_case("äbc", &NoVars));
        assert!(!p.eq_ignore_case("äbcd", &NoVars));
    }
}
