//! JSON written the way Python's `json.dumps(sort_keys=True)` writes it, so result lines match
//! ansible-playbook's byte for byte.

use serde_json::Value;

/// `indent: None` gives one line with `", "` and `": "` separators; `Some(n)` pretty-prints.
pub fn python_json(value: &Value, indent: Option<usize>, sort_keys: bool) -> String {
    let mut out = String::new();
    write_value(&mut out, value, indent, sort_keys, 0);
    out
}

/// `json.dumps` with its default `ensure_ascii=True`, as the `to_json` filters write: every
/// character past ASCII (they only occur inside strings) as `\uXXXX`, in UTF-16 units.
pub fn python_json_ascii(value: &Value, indent: Option<usize>, sort_keys: bool) -> String {
    let mut out = String::new();
    for character in python_json(value, indent, sort_keys).chars() {
        if character.is_ascii() {
            out.push(character);
            continue;
        }
        let mut units = [0u16; 2];
        for unit in character.encode_utf16(&mut units) {
            out.push_str(&format!("\\u{unit:04x}"));
        }
    }
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
        Some(float) if number.is_f64() => python_float_repr(float),
        _ => number.to_string(),
    }
}

/// Python's `repr` of a float: the shortest digits that read back the same, positional
/// from 1e-4 up to 1e16 (always with a `.`), else `1e-05` / `1.5e+16` style.
pub fn python_float_repr(float: f64) -> String {
    if float.is_nan() {
        return "nan".into();
    }
    if float.is_infinite() {
        return if float > 0.0 { "inf" } else { "-inf" }.into();
    }
    let scientific = format!("{:e}", float.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if float.is_sign_negative() { "-" } else { "" };
    // Where the decimal point falls: the value is 0.DIGITS times ten to this.
    let point = exponent + 1;
    if !(-4 < point && point <= 16) {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        return format!("{sign}{first}{fraction}e{exponent_sign}{:02}", exponent.abs());
    }
    let body = if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}.0", "0".repeat(point as usize - digits.len()))
    } else {
        let (whole, fraction) = digits.split_at(point as usize);
        format!("{whole}.{fraction}")
    };
    format!("{sign}{body}")
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
    use super::{python_float_repr, python_json};
    use serde_json::json;

    #[test]
    fn floats_print_as_python_repr_does() {
        for (float, repr) in [
            (1.5, "1.5"),
            (3.0, "3.0"),
            (-0.0, "-0.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (123456.789, "123456.789"),
            (-2.5e300, "-2.5e+300"),
        ] {
            assert_eq!(python_float_repr(float), repr, "{float:?}");
        }
    }

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
