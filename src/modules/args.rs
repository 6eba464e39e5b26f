//! Typed access to a module's templated arguments, with Ansible's conversions and messages.

use serde_json::{Map, Value};

use super::{Failure, fail};

/// A module's arguments after templating and `omit` removal.
#[derive(Clone, Debug, Default)]
pub struct Args {
    pub map: Map<String, Value>,
}

impl Args {
    pub fn new(map: Map<String, Value>) -> Args {
        Args { map }
    }

    /// The first of `names` that is set (a parameter and its aliases).
    pub fn value(&self, names: &[&str]) -> Option<&Value> {
        names.iter().find_map(|name| self.map.get(*name).filter(|value| !value.is_null()))
    }

    /// A string parameter; numbers and booleans are accepted as their text.
    pub fn string(&self, names: &[&str]) -> Option<String> {
        self.value(names).map(|value| match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        })
    }

    pub fn required(&self, names: &[&str]) -> Result<String, Failure> {
        self.string(names).ok_or_else(|| fail(format!("missing required arguments: {}", names[0])))
    }

    /// A boolean parameter, read as Ansible's `boolean()` reads it.
    pub fn flag(&self, names: &[&str], default: bool) -> Result<bool, Failure> {
        match self.value(names) {
            None => Ok(default),
            Some(value) => to_bool(value).ok_or_else(|| {
                fail(format!(
                    "argument '{}' is of type {} and we were unable to convert to bool: The value '{}' is not a valid boolean.  Valid booleans include: 'on', 'yes', '1', 'n', 'f', 'false', 'off', 'no', 't', 'y', 'true', '0'",
                    names[0],
                    type_name(value),
                    super::super::playbook::display_string(value)
                ))
            }),
        }
    }

    /// An optional boolean, for tri-state parameters such as `enabled`.
    pub fn maybe_flag(&self, names: &[&str]) -> Result<Option<bool>, Failure> {
        match self.value(names) {
            None => Ok(None),
            Some(_) => self.flag(names, false).map(Some),
        }
    }

    pub fn integer(&self, names: &[&str], default: i64) -> Result<i64, Failure> {
        match self.value(names) {
            None => Ok(default),
            Some(Value::Number(number)) => number
                .as_i64()
                .or_else(|| number.as_f64().map(|f| f as i64))
                .ok_or_else(|| fail(format!("argument '{}' is not an integer", names[0]))),
            Some(Value::String(text)) => text.trim().parse().map_err(|_| {
                fail(format!(
                    "argument '{}' is of type str and we were unable to convert to int: '{text}'",
                    names[0]
                ))
            }),
            Some(other) => {
                Err(fail(format!("argument '{}' expects an integer, got {other}", names[0])))
            }
        }
    }

    /// A list parameter: a list, or a comma-separated string.
    pub fn list(&self, names: &[&str]) -> Vec<String> {
        match self.value(names) {
            None => Vec::new(),
            Some(Value::Array(items)) => {
                items.iter().map(super::super::playbook::display_string).collect()
            }
            Some(Value::String(text)) => text
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            Some(other) => vec![other.to_string()],
        }
    }

    /// A `choices:` parameter.
    pub fn choice(
        &self,
        names: &[&str],
        choices: &[&str],
        default: Option<&str>,
    ) -> Result<Option<String>, Failure> {
        match self.string(names) {
            None => Ok(default.map(str::to_string)),
            Some(value) if choices.contains(&value.as_str()) => Ok(Some(value)),
            Some(value) => Err(fail(format!(
                "value of {} must be one of: {}, got: {value}",
                names[0],
                choices.join(", ")
            ))),
        }
    }
}

pub fn to_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(flag) => Some(*flag),
        Value::Number(number) => match number.as_i64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
            "yes" | "on" | "1" | "true" | "y" | "t" => Some(true),
            "no" | "off" | "0" | "false" | "n" | "f" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "str",
        Value::Number(_) => "int",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
        _ => "other",
    }
}
