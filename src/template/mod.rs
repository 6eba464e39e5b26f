//! Templating with minijinja the way Ansible does it: `{{ }}` in any string, native types for
//! a lone expression, strict undefined variables, and Ansible's filters and tests.

mod context;
pub(crate) mod datetime;
mod filters;
mod hostvars;
pub mod lookups;
mod numbers;
mod yaml_dump;

use std::sync::Arc;

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value as JinjaValue};
use serde_json::Value;

use crate::error::{Error, Result};

pub use context::Context;
pub use hostvars::Hostvars;

/// The placeholder that `omit` renders to; arguments equal to it are dropped.
pub const OMIT: &str = "__omit_place_holder__bramble";

/// Shared, cheap to clone: one environment for strings and template files alike.
#[derive(Clone, Debug)]
pub struct Templar {
    jinja: Arc<Environment<'static>>,
    /// The run's `hostvars`, shared by every clone.
    hostvars: Arc<Hostvars>,
}

impl Default for Templar {
    fn default() -> Self {
        Templar::new()
    }
}

impl Templar {
    pub fn new() -> Templar {
        Templar { jinja: Arc::new(environment()), hostvars: Arc::default() }
    }

    /// Every host's variables as templates see them in `hostvars`.
    pub fn hostvars(&self) -> &Hostvars {
        &self.hostvars
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
    ///
    /// As in Ansible, Jinja drops the source's last newline (so `"{{ [1] }}\n"` is still a
    /// lone expression), and a text result then gets back as many trailing newlines as the
    /// source had: `"a{{ 'z\n' }}\n"` gives `"az\n"`, `"{{ s }}\n"` keeps its newline.
    pub fn render_string(&self, text: &str, context: &Arc<Context>) -> Result<Value> {
        if !text.contains("{{") && !text.contains("{%") && !text.contains("{#") {
            return Ok(Value::String(text.to_string()));
        }
        let body = text.strip_suffix("\r\n").or_else(|| text.strip_suffix('\n')).unwrap_or(text);
        let value = if let Some(expression) = lone_expression(body)
            && let Ok(compiled) = self.jinja.compile_expression(expression)
        {
            let value = compiled.eval(JinjaValue::from_dyn_object(context.clone()));
            self.finish_expression(value, expression, context)?
        } else {
            self.jinja
                .render_str(body, JinjaValue::from_dyn_object(context.clone()))
                .map(Value::String)
                .map_err(|error| describe(error, text, context))?
        };
        Ok(match value {
            Value::String(rendered) => Value::String(with_newlines_of(text, rendered)),
            other => other,
        })
    }

    /// Evaluates a `when:`-style condition.
    pub fn condition(&self, expression: &str, context: &Arc<Context>) -> Result<bool> {
        let expression = expression.trim();
        let inner = lone_expression(expression).unwrap_or(expression);
        let compiled = self.jinja.compile_expression(inner).map_err(|error| {
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
        // ansible-core 2.19 refuses a condition whose result is not a boolean (a "false"
        // string from -e or an INI inventory would otherwise count as true).
        if value.kind() != minijinja::value::ValueKind::Bool {
            let truth = if value.is_true() { "True" } else { "False" };
            return Err(Error::template(format!(
                "Conditional result ({truth}) was derived from value of type '{}' at \
                 '<unknown>'. Conditionals must have a boolean result.",
                filters::type_debug(value)
            )));
        }
        Ok(value.is_true())
    }

    /// Renders a template file's text: trim_blocks on, the trailing newlines kept.
    pub fn render_file(
        &self,
        text: &str,
        context: &Arc<Context>,
    ) -> std::result::Result<String, FileFailure> {
        let rendered = self
            .jinja
            .render_str(text, JinjaValue::from_dyn_object(context.clone()))
            .map_err(|error| FileFailure {
                position: position(&error, text),
                message: describe_file(error, context),
            })?;
        // As ansible-core, a file keeps its trailing newlines even after a block tag.
        Ok(with_newlines_of(text, rendered))
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
        datetime::as_data(|| serde_json::to_value(&value))
            .map_err(|error| Error::template(format!("in `{expression}`: {error}")))
    }
}

/// Pads a rendered text with newlines up to as many as its source ended with.
fn with_newlines_of(source: &str, mut rendered: String) -> String {
    let trailing = |text: &str| text.len() - text.trim_end_matches('\n').len();
    let missing = trailing(source).saturating_sub(trailing(&rendered));
    rendered.extend(std::iter::repeat_n('\n', missing));
    rendered
}

fn environment() -> Environment<'static> {
    let mut environment = Environment::new();
    environment.set_undefined_behavior(UndefinedBehavior::Strict);
    // Ansible templates strings and files with trim_blocks on: a newline right after a block
    // tag is dropped. Strings lose their last newline in render_string, not here.
    let syntax = SyntaxConfig::builder().trim_blocks(true).keep_trailing_newline(true).build();
    if let Ok(syntax) = syntax {
        environment.set_syntax(syntax);
    }
    environment.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    // ansible-core 2.19 writes nothing for a none among other text (`a {{ none }} b` is
    // `a  b`); inside a list or mapping it is still Python's `None`.
    environment.set_formatter(|out, state, value| {
        if value.is_none() {
            return Ok(());
        }
        minijinja::escape_formatter(out, state, value)
    });
    // Jinja under Ansible runs on Python: playbooks call string, list and dict methods
    // (`x.split(':')`, `s.startswith('a')`, `d.items()`), which minijinja-contrib provides.
    environment.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
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

/// A template file that failed to render: ansible-core's message, and the 1-based line
/// and column in the file where minijinja knows them.
#[derive(Debug)]
pub struct FileFailure {
    pub message: String,
    pub position: Option<(usize, usize)>,
}

impl std::fmt::Display for FileFailure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.message)
    }
}

/// The line of a template error, with the column of its span when that lies on the line.
fn position(error: &minijinja::Error, text: &str) -> Option<(usize, usize)> {
    let line = error.line()?;
    let column = error.range().and_then(|range| {
        let before = text.get(..range.start)?;
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        let on_line = before.matches('\n').count() + 1 == line;
        on_line.then(|| before[line_start..].chars().count() + 1)
    });
    Some((line, column.unwrap_or(1)))
}

/// A template file's error in ansible-core's words: what Jinja finds while compiling is a
/// "Syntax error in template", what fails while rendering an "Error rendering template".
fn describe_file(error: minijinja::Error, context: &Arc<Context>) -> String {
    let compiling = matches!(
        error.kind(),
        ErrorKind::SyntaxError | ErrorKind::UnknownFilter | ErrorKind::UnknownTest
    );
    let message = match describe(error, "", context) {
        Error::TemplateFailed { message, .. } => message,
        other => other.to_string(),
    };
    // There is no expression to name: the file is named by the caller.
    let message = message.trim_end_matches(" (in ``)").to_string();
    if compiling {
        let message = message.strip_prefix("syntax error: ").unwrap_or(&message);
        return format!("Syntax error in template: {message}");
    }
    if message.starts_with("not supported yet: ") || message.ends_with(" is undefined") {
        return message;
    }
    format!("Error rendering template: {message}")
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
    // No loader is set: a template that pulls in another cannot find it anywhere.
    if error.kind() == ErrorKind::TemplateNotFound {
        return Error::template(
            "not supported yet: {% include %}, {% import %} and {% extends %} in templates",
        );
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
    // minijinja says "filter NAME is unknown" but "NAME is unknown" for a function.
    let detail = error.detail().unwrap_or_default();
    let words: Vec<&str> = detail.split_whitespace().collect();
    let name = words
        .iter()
        .position(|word| *word == "is")
        .and_then(|index| index.checked_sub(1))
        .map_or(detail, |index| words[index]);
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
    fn strings_trim_blocks_and_keep_as_many_trailing_newlines_as_their_source() {
        let templar = Templar::new();
        let vars = context(json!({"nl": "z\n", "items": [1, 2]}));
        let render = |text: &str| templar.render_string(text, &vars).unwrap();
        assert_eq!(render("a{{ nl }}\n"), json!("az\n"));
        assert_eq!(render("{% if true %}\nA\n{% endif %}\nB\n"), json!("A\nB\n"));
        assert_eq!(render("{% for i in items %}\n{{ i }}\n{% endfor %}\n"), json!("1\n2\n"));
        assert_eq!(render("{{ items }}\n"), json!([1, 2]));
        assert_eq!(render("{{ items }}\n\n"), json!("[1, 2]\n\n"));
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
    fn unknown_names_are_named() {
        let templar = Templar::new();
        let vars = context(json!({}));
        for (text, expected) in [
            ("{{ foo() }}", "No function named 'foo'."),
            ("{{ 1 | nofilter }}", "No filter named 'nofilter'."),
            ("{{ 1 is notatest }}", "No test named 'notatest'."),
        ] {
            let error = templar.render_string(text, &vars).unwrap_err();
            assert!(error.to_string().contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn now_formats_the_time() {
        let templar = Templar::new();
        let vars = context(json!({}));
        let year = chrono::Utc::now().format("%Y").to_string();
        assert_eq!(
            templar.render_string("{{ now(utc=true, fmt='%Y') }}", &vars).unwrap(),
            json!(year)
        );
        assert!(templar.render_string("{{ now(fmt='%Q') }}", &vars).is_err());
    }

    #[test]
    fn none_among_text_is_nothing() {
        let templar = Templar::new();
        let vars = context(json!({"n": null}));
        let render = |text: &str| templar.render_string(text, &vars).unwrap();
        assert_eq!(render("a {{ n }} b {{ none }} c"), json!("a  b  c"));
        assert_eq!(
            render("{{ [n] }} {{ n | string }} {{ {'k': n} }}"),
            json!("[None] None {'k': None}")
        );
        assert_eq!(render("{{ n }}"), json!(null));
        let file = templar.render_file("a={{ n }}|{{ none | default('d') }}\n", &vars).unwrap();
        assert_eq!(file, "a=|\n");
        let file = templar.render_file("{% if true %}x{% endif %}\n\n", &vars).unwrap();
        assert_eq!(file, "x\n\n");
    }

    #[test]
    fn now_is_a_datetime() {
        let templar = Templar::new();
        let vars = context(json!({}));
        let render = |text: &str| templar.render_string(text, &vars).unwrap();
        let year: i64 = chrono::Utc::now().format("%Y").to_string().parse().unwrap();
        assert_eq!(render("{{ now(true).year }}"), json!(year));
        assert_eq!(render("{{ now(utc=true).strftime('%Y') }}"), json!(year.to_string()));
        // Data in ISO form, text as str() prints it.
        let data = render("{{ now() }}");
        assert_eq!(data.as_str().unwrap().as_bytes()[10], b'T', "{data}");
        let text = render("at {{ now() }}");
        assert_eq!(text.as_str().unwrap().as_bytes()[13], b' ', "{text}");
        assert_eq!(render("{{ now().date() | type_debug }}"), json!("date"));
    }

    #[test]
    fn python_methods_work_as_in_ansible() {
        let templar = Templar::new();
        let vars = context(json!({"address": "0.0.0.0:9100", "d": {"a": 1}}));
        let render = |text: &str| templar.render_string(text, &vars).unwrap();
        assert_eq!(render("{{ address.split(':')[-1] | int }}"), json!(9100));
        assert_eq!(render("{{ address.startswith('0.') }}"), json!(true));
        assert_eq!(render("{{ 'A b'.lower().replace(' ', '-') }}"), json!("a-b"));
        assert_eq!(render("{{ d.items() | list }}"), json!([["a", 1]]));
    }

    #[test]
    fn including_another_template_is_not_supported_yet() {
        let templar = Templar::new();
        let vars = context(json!({}));
        let error = templar.render_file("{% include 'inner.j2' %}\n", &vars).unwrap_err();
        assert!(error.to_string().contains("not supported yet: {% include %}"), "{error}");
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
