//! A request value as Plausible's messages show it: Elixir's `inspect` of the decoded JSON
//! (`"foo"`, `["is", "visit:source", ["a"]]`, `%{"a" => 1}`, `nil`).

use serde_json::Value;

/// `v` as Elixir's `inspect` shows the same decoded JSON.
pub fn inspect(v: &Value) -> String {
    let mut out = String::new();
    write(v, &mut out);
    out
}

fn write(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("nil"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push_str("%{");
            // Elixir shows a small map's keys in order, whatever order they came in.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                string(k, out);
                out.push_str(" => ");
                write(item, out);
            }
            out.push('}');
        }
    }
}

fn string(s: &str, out: &mut String) {
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Elixir escapes an interpolation's opening so the text reads back as written.
            '#' if chars.peek() == Some(&'{') => out.push_str("\\#"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:X}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_read_as_elixir_shows_them() {
        let cases = [
            ("a string", json!("foo"), r#""foo""#),
            ("quotes and backslashes", json!("a\"b\\c"), r#""a\"b\\c""#),
            ("line breaks", json!("a\nb\tc"), r#""a\nb\tc""#),
            ("an interpolation's opening", json!("#{x}"), r#""\#{x}""#),
            ("a control character", json!("\u{1}"), r#""\u{1}""#),
            ("non-ASCII text as is", json!("Zürich"), r#""Zürich""#),
            ("null", json!(null), "nil"),
            ("numbers", json!([1, -2, 1.5]), "[1, -2, 1.5]"),
            ("a filter", json!(["is", "visit:source", ["Google", 1]]), r#"["is", "visit:source", ["Google", 1]]"#),
            ("a map, keys in order", json!({"b": true, "a": 1}), r#"%{"a" => 1, "b" => true}"#),
            ("empty ones", json!([[], {}]), "[[], %{}]"),
        ];
        for (case, value, want) in cases {
            assert_eq!(inspect(&value), want, "case {case}");
        }
    }
}
