//! Jinja's `int` and `float` filters as they behave on Python: text read by Python's `int()`
//! and `float()` rules (whitespace, signs, `_` between digits, base prefixes), `"4.2" | int`
//! through a float, and anything else that is no number giving the default (`0`, `0.0`).

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Error, ErrorKind};

/// `int(default=0, base=10)`.
pub fn int(
    value: Value,
    default: Option<Value>,
    base: Option<u32>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let default = kwargs.get::<Option<Value>>("default")?.or(default).unwrap_or(Value::from(0));
    let base = kwargs.get::<Option<u32>>("base")?.or(base).unwrap_or(10);
    kwargs.assert_all_used()?;
    if value.is_undefined() {
        return Err(Error::from(ErrorKind::UndefinedError));
    }
    let whole = match value.kind() {
        ValueKind::Bool => Some(i128::from(value.is_true())),
        ValueKind::Number => match i128::try_from(value.clone()) {
            Ok(number) => Some(number),
            Err(_) => return truncate(f64::try_from(value).unwrap_or(f64::NAN), default),
        },
        ValueKind::String => {
            let text = value.as_str().unwrap_or_default();
            match python_int(text, base) {
                Some(number) => Some(number),
                None => match python_float(text) {
                    Some(number) => return truncate(number, default),
                    None => None,
                },
            }
        }
        _ => None,
    };
    Ok(whole.map(Value::from).unwrap_or(default))
}

/// `float(default=0.0)`.
pub fn float(value: Value, default: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let default = kwargs.get::<Option<Value>>("default")?.or(default).unwrap_or(Value::from(0.0));
    kwargs.assert_all_used()?;
    if value.is_undefined() {
        return Err(Error::from(ErrorKind::UndefinedError));
    }
    let number = match value.kind() {
        ValueKind::Bool => Some(if value.is_true() { 1.0 } else { 0.0 }),
        ValueKind::Number => f64::try_from(value).ok(),
        ValueKind::String => python_float(value.as_str().unwrap_or_default()),
        _ => None,
    };
    Ok(number.map(Value::from).unwrap_or(default))
}

/// Python's `int(float)`: towards zero; NaN is a ValueError (the default here), an infinity
/// an OverflowError that Jinja does not catch.
fn truncate(number: f64, default: Value) -> Result<Value, Error> {
    if number.is_nan() {
        return Ok(default);
    }
    if number.is_infinite() {
        let message = "cannot convert float infinity to integer";
        return Err(Error::new(ErrorKind::InvalidOperation, message));
    }
    Ok(Value::from(number.trunc() as i128))
}

/// Python's `int(text, base)`, for the integers a template can hold.
fn python_int(text: &str, base: u32) -> Option<i128> {
    let text = text.trim();
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let prefix = |radix: u32| match radix {
        16 => Some(["0x", "0X"]),
        8 => Some(["0o", "0O"]),
        2 => Some(["0b", "0B"]),
        _ => None,
    };
    let strip = |radix: u32| {
        prefix(radix)?.iter().find_map(|p| unsigned.strip_prefix(p)).map(|rest| (radix, rest))
    };
    let (radix, digits, prefixed) = match base {
        0 => match [16, 8, 2].into_iter().find_map(strip) {
            Some((radix, rest)) => (radix, rest, true),
            // Base 0 reads decimal without leading zeros, as Python source does.
            None if unsigned.starts_with('0')
                && !unsigned.trim_start_matches(['0', '_']).is_empty() =>
            {
                return None;
            }
            None => (10, unsigned, false),
        },
        2..=36 => match strip(base) {
            Some((radix, rest)) => (radix, rest, true),
            None => (base, unsigned, false),
        },
        _ => return None,
    };
    // One `_` may follow a base prefix or sit between two digits.
    let digits = if prefixed { digits.strip_prefix('_').unwrap_or(digits) } else { digits };
    let plain = without_separators(digits, |c| c.is_digit(radix))?;
    // from_str_radix takes a sign of its own, which would make `+-1` a number.
    if plain.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = i128::from_str_radix(&plain, radix).ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

/// Python's `float(text)`: decimal or exponent forms, `inf`, `infinity`, `nan` in any case,
/// `_` between digits.
fn python_float(text: &str) -> Option<f64> {
    let text = text.trim();
    let plain = if text.contains('_') {
        without_separators(text, |c| c.is_ascii_digit())?
    } else {
        text.to_string()
    };
    plain.parse::<f64>().ok()
}

/// `text` without its `_` separators, if each has a digit on both sides.
fn without_separators(text: &str, is_digit: impl Fn(char) -> bool) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    for (index, c) in chars.iter().enumerate() {
        if *c == '_' {
            let before = index.checked_sub(1).map(|i| chars[i]);
            let after = chars.get(index + 1).copied();
            if !before.is_some_and(&is_digit) || !after.is_some_and(&is_digit) {
                return None;
            }
        }
    }
    Some(text.replace('_', ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_reads_as_pythons_int() {
        let cases = [
            (" 12 ", 10, Some(12)),
            ("-3", 10, Some(-3)),
            ("+3", 10, Some(3)),
            ("1_000", 10, Some(1000)),
            ("1__0", 10, None),
            ("_1", 10, None),
            ("0x1A", 10, None),
            ("0x1A", 16, Some(26)),
            ("ff", 16, Some(255)),
            ("0x_ff", 0, Some(255)),
            ("0b101", 0, Some(5)),
            ("0o17", 0, Some(15)),
            ("012", 0, None),
            ("00", 0, Some(0)),
            ("12abc", 10, None),
            ("", 10, None),
            ("--1", 10, None),
            ("+-1", 10, None),
            ("1.9", 10, None),
        ];
        for (text, base, expected) in cases {
            assert_eq!(python_int(text, base), expected, "{text:?} base {base}");
        }
    }

    #[test]
    fn text_reads_as_pythons_float() {
        assert_eq!(python_float(" 2.5 "), Some(2.5));
        assert_eq!(python_float("1.5e2"), Some(150.0));
        assert_eq!(python_float("1_0.5"), Some(10.5));
        assert_eq!(python_float("-Infinity"), Some(f64::NEG_INFINITY));
        assert!(python_float("nan").is_some_and(f64::is_nan));
        assert_eq!(python_float("0x10"), None);
        assert_eq!(python_float("1_.5"), None);
        assert_eq!(python_float("1e_5"), None);
        assert_eq!(python_float("abc"), None);
        assert_eq!(python_float(""), None);
    }
}
