//! JSON written the way Python's `json.dumps(sort_keys=True)` writes it, so result lines match
//! ansible-playbook's byte for byte.

use serde_json::Value;

/// `indent: None` gives one line with `", "` and `": "` separators; `Some(n)` pretty-prints.
pub fn python_json(value: &Value, indent: Option<usize>, sort_keys: bool) -> String {
    let mut out = String::new();
    write_value(&mut out, value, indent, sort_keys, 0);
    out
}

fn write_value(
    out: &mut String,
    value: &Value,
    indent: Option<usize>,
    sort_keys: bool,
    level: usize,
) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Value::Number(number) => out.push_str(&python_number(number)),
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                separator(out, index, indent, level + 1);
                write_value(out, item, indent, sort_keys, level + 1);
            }
            closing(out, indent, level);
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            if sort_keys {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (index, (key, item)) in entries.into_iter().enumerate() {
                separator(out, index, indent, level + 1);
                write_string(out, key);
                out.push_str(": ");
                write_value(out, item, indent, sort_keys, level + 1);
            }
            closing(out, indent, level);
            out.push('}');
        }
    }
}

fn separator(out: &mut String, index: usize, indent: Option<usize>, level: usize) {
    match indent {
        Some(width) => {
            if index > 0 {
                out.push(',');
            }
            out.push('\n');
            out.push_str(&" ".repeat(width * level));
        }
        None if index > 0 => out.push_str(", "),
        None => {}
    }
}

fn closing(out: &mut String, indent: Option<usize>, level: usize) {
    if let Some(width) = indent {
        out.push('\n');
        out.push_str(&" ".repeat(width * level));
    }
}

fn python_number(number: &serde_json::Number) -> String {
    match number.as_f64() {
        Some(float) if number.is_f64() => {
            if float.fract() == 0.0 && float.abs() < 1e16 {
                format!("{float:.1}")
            } else {
                float.to_string()
            }
        }
        _ => number.to_string(),
    }
}

/// Ansible's callbacks dump with `ensure_ascii=False`: only control characters are escaped.
fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::python_json;
    use serde_json::json;

    #[test]
    fn matches_python_dumps() {
        let value = json!({"msg": "hi", "changed": false, "rc": 1, "list": [1, 2.0]});
        assert_eq!(
            python_json(&value, None, true),
            r#"{"changed": false, "list": [1, 2.0], "msg": "hi", "rc": 1}"#
        );
        assert_eq!(
            python_json(&json!({"msg": "é\u{1}"}), Some(4), true),
            "{\n    \"msg\": \"é\\u0001\"\n}"
        );
    }
}
