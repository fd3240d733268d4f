//! Goals: what counts as a conversion on a site. The api validates and stores them, the
//! aggregator matches events against them.

use serde::{Deserialize, Serialize};

/// Most goals a site may have.
pub const MAX_GOALS_PER_SITE: usize = 20;
/// Longest goal name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest page pattern, in characters.
pub const MAX_PATH_CHARS: usize = 2048;
/// Longest click selector (as the snippet reports it), in characters.
pub const MAX_SELECTOR_CHARS: usize = 256;
/// Longest event name, in characters.
pub const MAX_EVENT_CHARS: usize = 64;

/// What a goal matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GoalKind {
    /// A pageview whose path matches a pattern (`*` = any run of characters).
    Pageview,
    /// A click on exactly this selector.
    Click,
    /// A custom event of exactly this name.
    Event,
}

impl GoalKind {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pageview" => Some(Self::Pageview),
            "click" => Some(Self::Click),
            "event" => Some(Self::Event),
            _ => None,
        }
    }
}

/// A refused goal: the field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct GoalError {
    pub field: &'static str,
    pub reason: String,
}

fn err(field: &'static str, reason: impl Into<String>) -> GoalError {
    GoalError { field, reason: reason.into() }
}

/// A validated goal definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoalSpec {
    pub name: String,
    pub kind: GoalKind,
    pub matcher: String,
}

impl GoalSpec {
    /// Validates a goal as the api receives it.
    pub fn parse(name: Option<&str>, kind: Option<&str>, matcher: Option<&str>) -> Result<Self, GoalError> {
        let name = parse_name(name)?;
        let (kind, matcher) = parse_matcher(kind, matcher)?;
        Ok(Self { name, kind, matcher })
    }
}

/// A goal's or a funnel's name: 1 to [`MAX_NAME_CHARS`] as sent, stored trimmed.
pub fn parse_name(name: Option<&str>) -> Result<String, GoalError> {
    let raw_name = name.unwrap_or_default();
    let name = raw_name.trim();
    if name.is_empty() || raw_name.chars().count() > MAX_NAME_CHARS || raw_name.chars().any(char::is_control) {
        return Err(err("name", format!("must be 1 to {MAX_NAME_CHARS} characters, without control characters")));
    }
    Ok(name.to_string())
}

/// What a goal or a funnel step matches: its `kind` and `match` (errors name those fields).
pub fn parse_matcher(kind: Option<&str>, matcher: Option<&str>) -> Result<(GoalKind, String), GoalError> {
    let kind = kind.and_then(GoalKind::parse).ok_or_else(|| err("kind", "must be one of pageview, click, event"))?;
    let raw_matcher = matcher.unwrap_or_default();
    let matcher = raw_matcher.trim();
    let (max, what) = match kind {
        GoalKind::Pageview => (MAX_PATH_CHARS, "a path starting with '/', '*' matching any run of characters"),
        GoalKind::Click => (MAX_SELECTOR_CHARS, "a selector as the snippet reports it"),
        GoalKind::Event => (MAX_EVENT_CHARS, "an event name"),
    };
    // A path may come with leading or trailing white space (trimmed); a selector or an event
    // name holds no control character at all, as sent.
    let checked = if kind == GoalKind::Pageview { matcher } else { raw_matcher };
    if matcher.is_empty() || raw_matcher.chars().count() > max || checked.chars().any(char::is_control) {
        return Err(err("match", format!("must be {what}, 1 to {max} characters")));
    }
    if kind == GoalKind::Pageview && !matcher.starts_with('/') && !matcher.starts_with('*') {
        return Err(err("match", format!("must be {what}")));
    }
    Ok((kind, matcher.to_string()))
}

/// True when `path` matches `pattern`, where `*` matches any run of characters (also none)
/// and everything else matches itself.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == path;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !path.starts_with(first) || path.len() < first.len() + last.len() || !path.ends_with(last) {
        return false;
    }
    let mut rest = &path[first.len()..path.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_patterns_with_stars() {
        let cases = [
            ("/thank-you", "/thank-you", true),
            ("/thank-you", "/thank-you/", false),
            ("/thank-you*", "/thank-you", true),
            ("/thank-you*", "/thank-you/pro?x", true),
            ("/thank-you*", "/thanks", false),
            ("*", "/", true),
            ("/blog/*/comments", "/blog/2026/launch/comments", true),
            ("/blog/*/comments", "/blog/comments", false),
            ("/a*b*c", "/aXbYc", true),
            ("/a*b*c", "/acb", false),
            ("/a*a", "/a", false),
            ("*/pricing", "/en/pricing", true),
            ("/signup/*", "/signup/", true),
        ];
        for (pattern, path, want) in cases {
            assert_eq!(path_matches(pattern, path), want, "case {pattern} vs {path}");
        }
    }

    /// (name, kind, match, the field the refusal names).
    type Case<'a> = (Option<&'a str>, Option<&'a str>, Option<String>, &'a str);

    #[test]
    fn each_refusal_names_its_field() {
        let long = |n: usize| "x".repeat(n);
        let long_name = "n".repeat(101);
        let cases: Vec<Case> = vec![
            (None, Some("event"), Some("Signup".into()), "name"),
            (Some("  "), Some("event"), Some("Signup".into()), "name"),
            (Some(long_name.as_str()), Some("event"), Some("Signup".into()), "name"),
            (Some("Signup"), None, Some("Signup".into()), "kind"),
            (Some("Signup"), Some("hover"), Some("Signup".into()), "kind"),
            (Some("Signup"), Some("event"), None, "match"),
            (Some("Signup"), Some("event"), Some(long(65)), "match"),
            (Some("Signup"), Some("click"), Some(long(257)), "match"),
            (Some("Thanks"), Some("pageview"), Some("thank-you".into()), "match"),
            (Some("Thanks"), Some("pageview"), Some(format!("/{}", long(2048))), "match"),
        ];
        for (name, kind, matcher, field) in cases {
            let e = GoalSpec::parse(name, kind, matcher.as_deref()).expect_err(field);
            assert_eq!(e.field, field, "case {name:?} {kind:?} {matcher:?}: {e}");
        }
        let ok = GoalSpec::parse(Some(" Thanks "), Some("pageview"), Some("/thank-you*")).expect("valid");
        assert_eq!((ok.name.as_str(), ok.kind, ok.matcher.as_str()), ("Thanks", GoalKind::Pageview, "/thank-you*"));
        assert!(
            GoalSpec::parse(Some("n".repeat(100).as_str()), Some("click"), Some(&long(256))).is_ok(),
            "bounds are inclusive"
        );
    }
}
