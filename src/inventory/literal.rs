//! INI inventory values as ansible-core reads them: through Python's `ast.literal_eval`,
//! keeping the text as it is when it is no literal. So `08` and `007` stay text (Python has
//! no such integers), `0x1F` is 31, `1e3` is 1000.0, `[1, 2]` a list, `'22'` the text 22.

use serde_json::{Map, Number, Value};

/// The value of `text` as a Python literal, or the text itself.
pub fn value(text: &str) -> Value {
    let mut parser = Parser { text: text.as_bytes(), at: 0 };
    parser.skip_blanks();
    match parser.value() {
        Some(value) if parser.at_end() => value,
        _ => Value::String(text.to_string()),
    }
}

struct Parser<'a> {
    text: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    fn at_end(&mut self) -> bool {
        self.skip_blanks();
        self.at == self.text.len()
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.skip_blanks();
        let found = self.peek() == Some(byte);
        if found {
            self.at += 1;
        }
        found
    }

    fn value(&mut self) -> Option<Value> {
        self.skip_blanks();
        match self.peek()? {
            b'[' => self.sequence(b'[', b']').map(Value::Array),
            b'(' => self.sequence(b'(', b')').map(Value::Array),
            b'{' => self.mapping(),
            b'\'' | b'"' => self.string().map(Value::String),
            b'+' | b'-' => {
                let negative = self.peek() == Some(b'-');
                self.at += 1;
                self.skip_blanks();
                let number = self.number()?;
                Some(if negative { negate(number)? } else { number })
            }
            b'0'..=b'9' | b'.' => self.number(),
            _ => self.name(),
        }
    }

    fn name(&mut self) -> Option<Value> {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
            self.at += 1;
        }
        match &self.text[start..self.at] {
            b"True" => Some(Value::Bool(true)),
            b"False" => Some(Value::Bool(false)),
            b"None" => Some(Value::Null),
            _ => None,
        }
    }

    /// `[a, b]` or `(a, b)`, a trailing comma allowed; `(a)` alone is just `a`, but only a
    /// sequence is asked for here, so it counts as one item.
    fn sequence(&mut self, open: u8, close: u8) -> Option<Vec<Value>> {
        self.eat(open);
        let mut items = Vec::new();
        loop {
            if self.eat(close) {
                return Some(items);
            }
            items.push(self.value()?);
            if !self.eat(b',') {
                return self.eat(close).then_some(items);
            }
        }
    }

    fn mapping(&mut self) -> Option<Value> {
        self.eat(b'{');
        let mut map = Map::new();
        loop {
            if self.eat(b'}') {
                return Some(Value::Object(map));
            }
            let key = match self.value()? {
                Value::String(text) => text,
                Value::Array(_) | Value::Object(_) => return None,
                other => other.to_string(),
            };
            if !self.eat(b':') {
                return None;
            }
            let value = self.value()?;
            map.insert(key, value);
            if !self.eat(b',') {
                return self.eat(b'}').then_some(Value::Object(map));
            }
        }
    }

    /// A Python string literal in single or double quotes, with its common escapes.
    fn string(&mut self) -> Option<String> {
        let quote = self.peek()?;
        self.at += 1;
        let mut bytes = Vec::new();
        loop {
            let byte = self.peek()?;
            self.at += 1;
            match byte {
                b if b == quote => return String::from_utf8(bytes).ok(),
                b'\n' => return None,
                b'\\' => {
                    let escaped = self.peek()?;
                    self.at += 1;
                    match escaped {
                        b'n' => bytes.push(b'\n'),
                        b't' => bytes.push(b'\t'),
                        b'r' => bytes.push(b'\r'),
                        b'0' => bytes.push(0),
                        b'\\' | b'\'' | b'"' => bytes.push(escaped),
                        other => bytes.extend([b'\\', other]),
                    }
                }
                other => bytes.push(other),
            }
        }
    }

    /// An int (`0`, `42`, `1_000`, `0x1F`, `0o17`, `0b101`) or a float (`1.5`, `.5`, `1e3`).
    fn number(&mut self) -> Option<Value> {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.'))
            || (matches!(self.peek(), Some(b'+' | b'-'))
                && matches!(self.text.get(self.at.wrapping_sub(1)), Some(b'e' | b'E')))
        {
            self.at += 1;
        }
        let word = std::str::from_utf8(&self.text[start..self.at]).ok()?;
        python_number(word)
    }
}

fn negate(value: Value) -> Option<Value> {
    match value {
        Value::Number(number) if number.is_i64() => number.as_i64().map(|n| Value::from(-n)),
        Value::Number(number) => {
            number.as_f64().and_then(|f| Number::from_f64(-f)).map(Value::Number)
        }
        _ => None,
    }
}

/// Python's numeric literal grammar: underscores only between digits, no leading zeros on a
/// decimal integer other than zero itself.
fn python_number(word: &str) -> Option<Value> {
    let digits_ok = |text: &str, radix: u32| {
        !text.is_empty()
            && !text.starts_with('_')
            && !text.ends_with('_')
            && !text.contains("__")
            && text.chars().all(|c| c == '_' || c.is_digit(radix))
    };
    let lower = word.to_ascii_lowercase();
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(rest) = lower.strip_prefix(prefix) {
            let rest = rest.strip_prefix('_').unwrap_or(rest);
            return digits_ok(rest, radix)
                .then(|| i64::from_str_radix(&rest.replace('_', ""), radix).ok())
                .flatten()
                .map(Value::from);
        }
    }
    if digits_ok(word, 10) {
        let plain = word.replace('_', "");
        if plain.len() > 1 && plain.starts_with('0') && plain.chars().any(|c| c != '0') {
            return None;
        }
        return plain.parse::<i64>().ok().map(Value::from);
    }
    // A float: digits, an optional fraction, an optional exponent.
    let (mantissa, exponent) = match lower.split_once('e') {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (lower.as_str(), None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let has_point = mantissa.contains('.');
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let part_ok = |part: &str| part.is_empty() || digits_ok(part, 10);
    if !part_ok(whole) || !part_ok(fraction) || (!has_point && exponent.is_none()) {
        return None;
    }
    if let Some(exponent) = exponent {
        let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
        if !digits_ok(digits, 10) {
            return None;
        }
    }
    let number: f64 = lower.replace('_', "").parse().ok()?;
    Number::from_f64(number).map(Value::Number)
}

#[cfg(test)]
mod tests {
    use super::value;
    use serde_json::json;

    #[test]
    fn python_literals_and_text_as_ansible_core_reads_them() {
        for (text, expected) in [
            ("08", json!("08")),
            ("007", json!("007")),
            ("00", json!(0)),
            ("42", json!(42)),
            ("-3", json!(-3)),
            ("1_000", json!(1000)),
            ("1__0", json!("1__0")),
            ("0x1F", json!(31)),
            ("0o17", json!(15)),
            ("0b101", json!(5)),
            ("1.50", json!(1.5)),
            ("1e3", json!(1000.0)),
            ("-2.5e-1", json!(-0.25)),
            (".5", json!(0.5)),
            ("5.", json!(5.0)),
            ("True", json!(true)),
            ("None", json!(null)),
            ("true", json!("true")),
            ("'22'", json!("22")),
            ("\"a b\"", json!("a b")),
            ("[1,2]", json!([1, 2])),
            ("[1, 'a', [True]]", json!([1, "a", [true]])),
            ("(1, 2)", json!([1, 2])),
            ("{'a': 1, 'b': [2]}", json!({"a": 1, "b": [2]})),
            ("[1,", json!("[1,")),
            ("1.2.3", json!("1.2.3")),
            ("10.0.2.2", json!("10.0.2.2")),
            ("2222:22", json!("2222:22")),
            ("abc", json!("abc")),
            ("", json!("")),
        ] {
            assert_eq!(value(text), expected, "{text:?}");
        }
    }
}
