//! Templating with minijinja the way Ansible does it: `{{ }}` in any string, native types for
//! a lone expression, strict undefined variables, and Ansible's filters and tests.

mod context;
mod filters;
pub mod lookups;

use std::sync::Arc;

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value as JinjaValue};
use serde_json::Value;

use crate::error::{Error, Result};

pub use context::Context;

/// The placeholder that `omit` renders to; arguments equal to it are dropped.
pub const OMIT: &str = "__omit_place_holder__bramble";

/// Shared, cheap to clone: the two environments (strings, and template files with trim_blocks).
#[derive(Clone, Debug)]
pub struct Templar {
    inline: Arc<Environment<'static>>,
    files: Arc<Environment<'static>>,
}

impl Default for Templar {
    fn default() -> Self {
        Templar::new()
    }
}

impl Templar {
    pub fn new() -> Templar {
        Templar { inline: Arc::new(environment(false)), files: Arc::new(environment(true)) }
    }

    /// Renders every string inside a value; other scalars pass through.
    pub fn render_value(&self, value: &Value, context: &Arc<Context>) -> Result<Value> {
        match value {
            Value::String(text) => self.render_string(text, context),
            Value::Array(items) => items
                .iter()
                .map(|item| self.render_value(item, context))
                .collect::<Result<_>>()
                .map(Value::Array),
            Value::Object(map) => {
                let mut rendered = serde_json::Map::new();
                for (key, item) in map {
                    let key = match self.render_string(key, context)? {
                        Value::String(text) => text,
                        other => other.to_string(),
                    };
                    rendered.insert(key, self.render_value(item, context)?);
                }
                Ok(Value::Object(rendered))
            }
            other => Ok(other.clone()),
        }
    }

    /// A lone `{{ expr }}` keeps its type (a list stays a list); anything else is text.
    pub fn render_string(&self, text: &str, context: &Arc<Context>) -> Result<Value> {
        if !text.contains("{{") && !text.contains("{%") && !text.contains("{#") {
            return Ok(Value::String(text.to_string()));
        }
        if let Some(expression) = lone_expression(text)
            && let Ok(compiled) = self.inline.compile_expression(expression)
        {
            let value = compiled.eval(JinjaValue::from_dyn_object(context.clone()));
            return self.finish_expression(value, expression, context);
        }
        self.inline
            .render_str(text, JinjaValue::from_dyn_object(context.clone()))
            .map(Value::String)
            .map_err(|error| describe(error, text, context))
    }

    /// Evaluates a `when:`-style condition.
    pub fn condition(&self, expression: &str, context: &Arc<Context>) -> Result<bool> {
        let expression = expression.trim();
        let inner = lone_expression(expression).unwrap_or(expression);
        let compiled = self.inline.compile_expression(inner).map_err(|error| {
            Error::template(format!("in the condition `{expression}`: {}", error_text(&error)))
        })?;
        let value = compiled
            .eval(JinjaValue::from_dyn_object(context.clone()))
            .map_err(|error| describe(error, expression, context))?;
        if value.is_undefined() {
            let (_, missing) = context.take_failure();
            let name = missing.unwrap_or_else(|| inner.to_string());
            return Err(Error::template(format!(
                "the conditional check '{expression}' failed: '{name}' is undefined"
            )));
        }
        Ok(value.is_true())
    }

    /// Renders a template file's text: trim_blocks on, the trailing newline kept.
    pub fn render_file(&self, text: &str, context: &Arc<Context>) -> Result<String> {
        self.files
            .render_str(text, JinjaValue::from_dyn_object(context.clone()))
            .map_err(|error| describe(error, "the template", context))
    }

    fn finish_expression(
        &self,
        value: std::result::Result<JinjaValue, minijinja::Error>,
        expression: &str,
        context: &Arc<Context>,
    ) -> Result<Value> {
        let value = value.map_err(|error| describe(error, expression, context))?;
        if value.is_undefined() {
            let (failure, missing) = context.take_failure();
            let message = failure.unwrap_or_else(|| {
                format!(
                    "'{}' is undefined",
                    missing.unwrap_or_else(|| expression.trim().to_string())
                )
            });
            return Err(Error::template(message));
        }
        serde_json::to_value(&value)
            .map_err(|error| Error::template(format!("in `{expression}`: {error}")))
    }
}

fn environment(for_files: bool) -> Environment<'static> {
    let mut environment = Environment::new();
    environment.set_undefined_behavior(UndefinedBehavior::Strict);
    let syntax = SyntaxConfig::builder().trim_blocks(for_files).keep_trailing_newline(true).build();
    if let Ok(syntax) = syntax {
        environment.set_syntax(syntax);
    }
    environment.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    filters::register(&mut environment);
    lookups::register(&mut environment);
    environment.add_global("omit", OMIT);
    environment
}

/// The inside of `{{ ... }}` when that is the whole string.
fn lone_expression(text: &str) -> Option<&str> {
    // Text around the expression, even a newline, makes the result a string.
    let inner = text.strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") {
        return None;
    }
    Some(inner)
}

/// Whether a value holds anything to render.
pub fn has_template(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains("{{") || text.contains("{%") || text.contains("{#"),
        Value::Array(items) => items.iter().any(has_template),
        Value::Object(map) => {
            map.iter().any(|(key, item)| key.contains("{{") || has_template(item))
        }
        _ => false,
    }
}

fn error_text(error: &minijinja::Error) -> String {
    match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    }
}

/// Turns a minijinja error into Ansible's wording, naming the missing variable when known.
fn describe(error: minijinja::Error, text: &str, context: &Arc<Context>) -> Error {
    let (failure, missing) = context.take_failure();
    if let Some(failure) = failure {
        return Error::template(failure);
    }
    if error.kind() == ErrorKind::UndefinedError
        && let Some(name) = missing
    {
        return Error::template(format!("'{name}' is undefined"));
    }
    // Lookup failures already read as ansible-core words them.
    if let Some(detail) = error.detail().filter(|d| d.starts_with("The lookup plugin ")) {
        return Error::template(detail.to_string());
    }
    if let Some(name) = unknown_name(&error) {
        return Error::template(format!("{name} (in `{}`)", text.trim()));
    }
    Error::template(format!("{} (in `{text}`)", error_text(&error)))
}

/// "No filter named 'x'." for an unknown filter or test, as ansible-core says it.
fn unknown_name(error: &minijinja::Error) -> Option<String> {
    let kind = match error.kind() {
        ErrorKind::UnknownFilter => "filter",
        ErrorKind::UnknownTest => "test",
        ErrorKind::UnknownFunction => "function",
        _ => return None,
    };
    let detail = error.detail().unwrap_or_default();
    let name = detail.split_whitespace().nth(1).unwrap_or(detail);
    Some(format!("No {kind} named '{name}'."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context(vars: Value) -> Arc<Context> {
        let Value::Object(vars) = vars else { panic!("test vars must be a mapping") };
        Context::new(vars, Templar::new())
    }

    #[test]
    fn lone_expression_keeps_type_and_vars_resolve_lazily() {
        let templar = Templar::new();
        let vars = context(
            json!({"arch": "{{ map[machine] }}", "map": {"x86_64": "amd64"}, "machine": "x86_64", "ports": [1, 2]}),
        );
        assert_eq!(templar.render_string("{{ ports }}", &vars).unwrap(), json!([1, 2]));
        assert_eq!(
            templar.render_string("linux-{{ arch }}.tar.gz", &vars).unwrap(),
            json!("linux-amd64.tar.gz")
        );
    }

    #[test]
    fn text_around_an_expression_is_kept() {
        let templar = Templar::new();
        let vars = context(json!({"x": "{\"a\": 1}"}));
        assert_eq!(templar.render_string("{{ x }}\n", &vars).unwrap(), json!("{\"a\": 1}\n"));
    }

    #[test]
    fn undefined_names_the_variable() {
        let templar = Templar::new();
        let vars = context(json!({"a": "{{ b }}"}));
        let error = templar.render_string("x{{ nothere }}", &vars).unwrap_err();
        assert!(error.to_string().contains("'nothere' is undefined"), "{error}");
        let error = templar.render_string("{{ a }}", &vars).unwrap_err();
        assert!(error.to_string().contains("'b' is undefined"), "{error}");
    }

    #[test]
    fn self_reference_is_reported() {
        let templar = Templar::new();
        let vars = context(json!({"a": "{{ a }}"}));
        let error = templar.render_string("{{ a }}", &vars).unwrap_err();
        assert!(error.to_string().contains("recursive loop"), "{error}");
    }

    #[test]
    fn conditions() {
        let templar = Templar::new();
        let vars = context(json!({"flag": true, "result": {"changed": true, "rc": 0}}));
        assert!(templar.condition("flag and result is changed", &vars).unwrap());
        assert!(!templar.condition("missing is defined", &vars).unwrap());
        assert!(templar.condition("result.rc == 0", &vars).unwrap());
        assert!(templar.condition("missing", &vars).is_err());
    }

    #[test]
    fn template_files_trim_blocks_and_keep_newline() {
        let templar = Templar::new();
        let vars = context(json!({"items": ["a", "b"]}));
        let text = "{% for i in items %}\n{{ i }}\n{% endfor %}\n";
        assert_eq!(templar.render_file(text, &vars).unwrap(), "a\nb\n");
    }
}
