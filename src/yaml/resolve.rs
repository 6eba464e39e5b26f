//! YAML 1.1 scalar typing as PyYAML's resolver does it: `0644` is octal, `yes` is true.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Number, Value};

use crate::error::{Error, Mark, Result};

static BOOL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$")
        .expect("valid regex")
});
static INT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
    )
    .expect("valid regex")
});
static FLOAT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
    )
    .expect("valid regex")
});

/// Types an unquoted scalar.
pub fn plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        _ => {}
    }
    if BOOL.is_match(text) {
        return Value::Bool(
            matches!(text.chars().next(), Some('y' | 'Y' | 't' | 'T'))
                || text.eq_ignore_ascii_case("on"),
        );
    }
    if INT.is_match(text)
        && let Some(number) = parse_int(text)
    {
        return Value::Number(number.into());
    }
    if FLOAT.is_match(text)
        && let Some(number) = parse_float(text).and_then(Number::from_f64)
    {
        return Value::Number(number);
    }
    Value::String(text.to_string())
}

/// Whether PyYAML's resolver types this unquoted text as null, a bool, an int or a float (the
/// dumper quotes such strings so that they read back as strings).
pub fn types_as_non_string(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
        || BOOL.is_match(text)
        || INT.is_match(text)
        || FLOAT.is_match(text)
}

/// Applies an explicit tag such as `!!str` or Ansible's `!unsafe`.
pub fn tagged(handle: &str, suffix: &str, text: String, mark: &Mark) -> Result<Value> {
    match (handle, suffix) {
        ("tag:yaml.org,2002:", "str") | ("!!", "str") => Ok(Value::String(text)),
        ("tag:yaml.org,2002:", "int") | ("!!", "int") => parse_int(&text)
            .map(|number| Value::Number(number.into()))
            .ok_or_else(|| Error::invalid(mark, format!("`{text}` is not an integer"))),
        ("tag:yaml.org,2002:", "bool") | ("!!", "bool") => Ok(plain(&text)),
        ("tag:yaml.org,2002:", "float") | ("!!", "float") => Ok(plain(&text)),
        ("!", "unsafe") => Ok(Value::String(unsafe_text(&text))),
        ("!", "vault") => {
            let plain = crate::vault::decrypt(text.trim().as_bytes(), &mark.location())
                .map_err(|message| Error::VaultFailed { what: mark.location(), message })?;
            String::from_utf8(plain).map(Value::String).map_err(|_| Error::VaultFailed {
                what: mark.location(),
                message: "the vaulted value is not UTF-8 text".into(),
            })
        }
        _ => Ok(plain(&text)),
    }
}

/// `!unsafe` text is never templated; wrapping it in a raw block gives exactly that.
pub fn unsafe_text(text: &str) -> String {
    if text.contains("{{") || text.contains("{%") || text.contains("{#") {
        format!("{{% raw %}}{text}{{% endraw %}}")
    } else {
        text.to_string()
    }
}

fn parse_int(text: &str) -> Option<i64> {
    let cleaned = text.replace('_', "");
    let (negative, digits) = match cleaned.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, cleaned.strip_prefix('+').unwrap_or(&cleaned)),
    };
    let magnitude = if let Some(binary) = digits.strip_prefix("0b") {
        i64::from_str_radix(binary, 2).ok()?
    } else if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if digits.contains(':') {
        sexagesimal(digits)? as i64
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(digits, 8).ok()?
    } else {
        digits.parse().ok()?
    };
    Some(if negative { -magnitude } else { magnitude })
}

fn parse_float(text: &str) -> Option<f64> {
    let cleaned = text.replace('_', "");
    let lower = cleaned.to_ascii_lowercase();
    if lower.ends_with(".inf") {
        return Some(if lower.starts_with('-') { f64::NEG_INFINITY } else { f64::INFINITY });
    }
    if lower.ends_with(".nan") {
        return Some(f64::NAN);
    }
    if cleaned.contains(':') {
        let negative = cleaned.starts_with('-');
        let value = sexagesimal(cleaned.trim_start_matches(['-', '+']))?;
        return Some(if negative { -value } else { value });
    }
    cleaned.parse().ok()
}

fn sexagesimal(text: &str) -> Option<f64> {
    text.split(':').try_fold(0.0, |total, part| Some(total * 60.0 + part.parse::<f64>().ok()?))
}

#[cfg(test)]
mod tests {
    use super::plain;
    use serde_json::json;

    #[test]
    fn octal_mode_is_an_integer() {
        assert_eq!(plain("0644"), json!(420));
        assert_eq!(plain("0755"), json!(493));
    }

    #[test]
    fn yaml_1_1_booleans() {
        for text in ["yes", "Yes", "on", "ON", "true"] {
            assert_eq!(plain(text), json!(true), "{text}");
        }
        for text in ["no", "off", "False"] {
            assert_eq!(plain(text), json!(false), "{text}");
        }
        assert_eq!(plain("y"), json!("y"));
    }

    #[test]
    fn numbers_and_strings() {
        assert_eq!(plain("0x1F"), json!(31));
        assert_eq!(plain("1_000"), json!(1000));
        assert_eq!(plain("1:30"), json!(90));
        assert_eq!(plain("1.5"), json!(1.5));
        assert_eq!(plain("1e3"), json!("1e3"));
        assert_eq!(plain("1.5.0"), json!("1.5.0"));
        assert_eq!(plain("~"), json!(null));
        assert_eq!(plain("0"), json!(0));
        assert_eq!(plain("09"), json!("09"));
    }
}
