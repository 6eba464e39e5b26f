//! Ansible's lookup plugins (`lookup()`, `query()`/`q()` and `with_<name>` loops), run on the
//! controller: each takes its terms and keyword options and returns a list.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::value::{Kwargs, Rest, Value as JinjaValue};
use minijinja::{Error as JinjaError, ErrorKind, State};
use serde_json::{Map, Value};

use super::Context;

/// The lookups bramble has, for "not found" errors.
pub const NAMES: &[&str] = &[
    "dict",
    "env",
    "file",
    "fileglob",
    "first_found",
    "indexed_items",
    "items",
    "lines",
    "list",
    "nested",
    "password",
    "pipe",
    "sequence",
    "subelements",
    "template",
    "together",
    "vars",
];

/// The context variable through which lookups reach the whole [`Context`].
pub const CONTEXT_KEY: &str = "__bramble_context";

/// Characters of a generated password: Python's ascii_letters, digits and `.,:-_`.
const PASSWORD_CHARS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:-_";

/// How a lookup was called: `with_<name>` changes where first_found looks.
#[derive(Clone, Copy, PartialEq)]
pub enum Invocation {
    Function,
    /// `with_<name>` on a task calling this module.
    Loop(&'static str),
}

/// Runs one lookup. The error is the text after "The lookup plugin 'x' failed: ".
pub fn run(
    name: &str,
    terms: Vec<Value>,
    options: &Map<String, Value>,
    context: &Arc<Context>,
    invocation: Invocation,
) -> Result<Vec<Value>, Failure> {
    let short = name.strip_prefix("ansible.builtin.").unwrap_or(name);
    let failed = Failure::Plugin;
    match short {
        "env" => Ok(env(&terms, options)),
        "file" => file(&terms, options, context).map_err(failed),
        "template" => template(&terms, options, context).map_err(failed),
        "pipe" => shell_lookup("pipe", &terms).map_err(failed),
        "lines" => shell_lookup("lines", &terms).map_err(failed),
        "vars" => vars(&terms, options, context).map_err(Failure::Bare),
        "items" => Ok(flatten_once(&terms)),
        "list" => Ok(terms),
        "indexed_items" => Ok(flatten_once(&terms)
            .into_iter()
            .enumerate()
            .map(|(index, item)| Value::Array(vec![Value::from(index), item]))
            .collect()),
        "dict" => dict(&terms).map_err(failed),
        "fileglob" => Ok(fileglob(&terms, context)),
        "first_found" => first_found(&terms, options, context, invocation).map_err(failed),
        "sequence" => sequence(&terms, options).map_err(failed),
        "subelements" => subelements(&terms).map_err(failed),
        "together" => together(&terms).map_err(failed),
        "nested" => nested(&terms).map_err(failed),
        "password" => password(&terms, options, context).map_err(failed),
        _ => Err(Failure::NotFound),
    }
}

/// Why a lookup failed, worded by [`Failure::message`] as ansible-core does.
#[derive(Debug)]
pub enum Failure {
    NotFound,
    /// The plugin's own error, shown after "The lookup plugin 'x' failed:".
    Plugin(String),
    /// An error ansible-core shows without the plugin prefix.
    Bare(String),
}

impl Failure {
    pub fn message(&self, name: &str) -> String {
        match self {
            Failure::NotFound => format!("The lookup plugin '{name}' was not found."),
            Failure::Plugin(text) => format!("The lookup plugin '{name}' failed: {text}"),
            Failure::Bare(text) => text.clone(),
        }
    }
}

/// Registers `lookup`, `query` and `q` in a template environment.
pub fn register(environment: &mut minijinja::Environment<'static>) {
    environment.add_function(
        "lookup",
        |state: &State, name: String, args: Rest<JinjaValue>, kwargs: Kwargs| {
            call(state, &name, &args, kwargs, false)
        },
    );
    for alias in ["query", "q"] {
        environment.add_function(
            alias,
            |state: &State, name: String, args: Rest<JinjaValue>, kwargs: Kwargs| {
                call(state, &name, &args, kwargs, true)
            },
        );
    }
}

fn call(
    state: &State,
    name: &str,
    args: &[JinjaValue],
    kwargs: Kwargs,
    query: bool,
) -> Result<JinjaValue, JinjaError> {
    let context = state
        .lookup(CONTEXT_KEY)
        .and_then(|value| value.downcast_object::<Context>())
        .ok_or_else(|| invalid(format!("the lookup '{name}' needs task variables")))?;
    let terms: Vec<Value> = args.iter().map(to_json).collect::<Result<_, _>>()?;
    let mut options = Map::new();
    for key in kwargs.args() {
        options.insert(key.to_string(), to_json(&kwargs.get::<JinjaValue>(key)?)?);
    }
    let wantlist = query || options.remove("wantlist").is_some_and(|v| truthy(&v));
    let errors = options.remove("errors").map(|v| plain(&v)).unwrap_or_else(|| "strict".into());
    let result = match run(name, terms, &options, &context, Invocation::Function) {
        Ok(result) => result,
        Err(Failure::NotFound) => return Err(invalid(Failure::NotFound.message(name))),
        Err(_) if errors == "ignore" || errors == "warn" => {
            return Ok(if wantlist {
                JinjaValue::from(Vec::<JinjaValue>::new())
            } else {
                ().into()
            });
        }
        Err(failure) => return Err(invalid(failure.message(name))),
    };
    Ok(JinjaValue::from(minijinja::value::Serde(&shape(result, wantlist))))
}

/// Without wantlist, one result stands alone and several strings are joined with commas.
pub fn shape(mut result: Vec<Value>, wantlist: bool) -> Value {
    if wantlist || result.is_empty() {
        return Value::Array(result);
    }
    if result.len() == 1 {
        return result.remove(0);
    }
    if result.iter().all(Value::is_string) {
        let texts: Vec<String> = result.iter().map(plain).collect();
        return Value::from(texts.join(","));
    }
    Value::Array(result)
}

fn invalid(message: String) -> JinjaError {
    JinjaError::new(ErrorKind::InvalidOperation, message)
}

fn to_json(value: &JinjaValue) -> Result<Value, JinjaError> {
    super::datetime::as_data(|| serde_json::to_value(value))
        .map_err(|error| invalid(format!("lookup argument: {error}")))
}

/// A string as itself, anything else as JSON text.
fn plain(value: &Value) -> String {
    crate::playbook::display_string(value)
}

fn truthy(value: &Value) -> bool {
    crate::modules::args_to_bool(value).unwrap_or(false)
}

fn option_bool(options: &Map<String, Value>, name: &str, default: bool) -> bool {
    options.get(name).and_then(crate::modules::args_to_bool).unwrap_or(default)
}

/// One level of lists opened, as ansible-core's `_flatten`.
fn flatten_once(terms: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for term in terms {
        match term {
            Value::Array(items) => out.extend(items.iter().cloned()),
            other => out.push(other.clone()),
        }
    }
    out
}

fn env(terms: &[Value], options: &Map<String, Value>) -> Vec<Value> {
    let default = options.get("default").cloned().unwrap_or_else(|| Value::from(""));
    terms
        .iter()
        .map(|term| match std::env::var(plain(term)) {
            Ok(value) => Value::from(value),
            Err(_) => default.clone(),
        })
        .collect()
}

/// Directories searched for controller files: the task's role, then the playbook's.
fn search_path(context: &Context) -> Vec<PathBuf> {
    match context.raw().get("ansible_search_path") {
        Some(Value::Array(paths)) => paths.iter().map(|p| PathBuf::from(plain(p))).collect(),
        _ => context
            .raw()
            .get("playbook_dir")
            .map(|dir| vec![PathBuf::from(plain(dir))])
            .unwrap_or_else(|| vec![PathBuf::from(".")]),
    }
}

/// ansible-core's lookup of a relative name: each search directory's `subdir/` first,
/// then the directory itself. Absolute names are used as they are.
fn find(context: &Context, subdir: Option<&str>, name: &str) -> Option<PathBuf> {
    if name.starts_with('/') || name.starts_with('~') {
        let path = expand_home(name);
        return path.exists().then_some(path);
    }
    let mut candidates = Vec::new();
    for base in search_path(context) {
        if let Some(subdir) = subdir
            && name.split('/').next() != Some(subdir)
        {
            candidates.push(base.join(subdir).join(name));
        }
        candidates.push(base.join(name));
    }
    candidates.into_iter().find(|path| path.exists())
}

fn expand_home(name: &str) -> PathBuf {
    match (name.strip_prefix('~'), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest.trim_start_matches('/')),
        _ => PathBuf::from(name),
    }
}

fn file(
    terms: &[Value],
    options: &Map<String, Value>,
    context: &Context,
) -> Result<Vec<Value>, String> {
    let (lstrip, rstrip) =
        (option_bool(options, "lstrip", false), option_bool(options, "rstrip", true));
    let mut out = Vec::new();
    for term in terms {
        let name = plain(term);
        let Some(path) = find(context, Some("files"), &name) else {
            return Err(format!(
                "Unable to access the file '{name}': File not found. Use -vvvvv to see paths searched."
            ));
        };
        let bytes = std::fs::read(&path)
            .map_err(|error| format!("Unable to access the file '{name}': {error}"))?;
        let mut text = String::from_utf8_lossy(&bytes).into_owned();
        if rstrip {
            text = text.trim_end().to_string();
        }
        if lstrip {
            text = text.trim_start().to_string();
        }
        out.push(Value::from(text));
    }
    Ok(out)
}

fn template(
    terms: &[Value],
    options: &Map<String, Value>,
    context: &Arc<Context>,
) -> Result<Vec<Value>, String> {
    for unsupported in ["variable_start_string", "variable_end_string", "comment_start_string"] {
        if options.contains_key(unsupported) {
            return Err(format!("not supported yet: the template lookup's {unsupported}"));
        }
    }
    if options.get("trim_blocks").and_then(crate::modules::args_to_bool) == Some(false) {
        return Err("not supported yet: the template lookup with trim_blocks=False".into());
    }
    let mut vars = context.raw().clone();
    if let Some(Value::Object(extra)) = options.get("template_vars") {
        vars.extend(extra.clone());
    }
    let local = Context::new(vars, context.templar().clone());
    let mut out = Vec::new();
    for term in terms {
        let name = plain(term);
        let Some(path) = find(context, Some("templates"), &name) else {
            return Err(format!("the template file {name} could not be found for the lookup"));
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|error| format!("the template file {name} could not be read: {error}"))?;
        let rendered =
            context.templar().render_file(&text, &local).map_err(|error| error.to_string())?;
        out.push(Value::from(rendered));
    }
    Ok(out)
}

/// `pipe` (the output, right-stripped) and `lines` (its lines), through `/bin/sh -c`.
fn shell_lookup(kind: &str, terms: &[Value]) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for term in terms {
        let command = plain(term);
        let output = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&command)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|error| format!("lookup_plugin.{kind}({command}): {error}"))?;
        let code = output.status.code().unwrap_or(-1);
        if code != 0 {
            return Err(format!("lookup_plugin.{kind}({command}) returned {code}"));
        }
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        if kind == "pipe" {
            out.push(Value::from(text.trim_end()));
        } else {
            out.extend(text.lines().map(Value::from));
        }
    }
    Ok(out)
}

fn vars(
    terms: &[Value],
    options: &Map<String, Value>,
    context: &Arc<Context>,
) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for term in terms {
        let Value::String(name) = term else {
            return Err(format!("Variable name must be 'str' not '{}'.", python_type(term)));
        };
        match context.resolved(name) {
            Some(Ok(value)) => out.push(value),
            Some(Err(message)) => return Err(message),
            None => match options.get("default") {
                Some(default) => out.push(default.clone()),
                None => return Err(format!("No variable named '{name}' was found.")),
            },
        }
    }
    Ok(out)
}

/// The Python type name of a value, as ansible-core's messages give it.
pub fn python_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

fn dict(terms: &[Value]) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for term in terms {
        let Value::Object(map) = term else {
            return Err(format!(
                "the 'dict' lookup plugin expects a dictionary, got '{}' of type <class '{}'>)",
                crate::output::python_repr(term),
                python_type(term)
            ));
        };
        for (key, value) in map {
            out.push(serde_json::json!({"key": key, "value": value}));
        }
    }
    Ok(out)
}

/// Files (not directories) matching each pattern, from the first directory with a match.
fn fileglob(terms: &[Value], context: &Context) -> Vec<Value> {
    let mut out = Vec::new();
    for term in terms {
        let pattern = plain(term);
        let (directory, file_pattern) = match pattern.rsplit_once('/') {
            Some((directory, file)) => (Some(directory), file),
            None => (None, pattern.as_str()),
        };
        let places: Vec<PathBuf> = match directory {
            Some(directory) => {
                let directory = if directory.is_empty() { "/" } else { directory };
                find(context, Some("files"), directory).into_iter().collect()
            }
            None => search_path(context)
                .into_iter()
                .flat_map(|base| [base.join("files"), base])
                .collect(),
        };
        for place in places {
            let found = glob_files(&place, file_pattern);
            if !found.is_empty() {
                out.extend(found.into_iter().map(|p| Value::from(p.display().to_string())));
                break;
            }
        }
    }
    out
}

/// Regular files in `directory` whose names match a shell glob (`*`, `?`, `[...]`), in
/// directory order; hidden files only for a pattern that starts with a dot, as Python's glob.
fn glob_files(directory: &Path, pattern: &str) -> Vec<PathBuf> {
    let Ok(regex) = regex::Regex::new(&glob_regex(pattern)) else { return Vec::new() };
    let Ok(listing) = std::fs::read_dir(directory) else { return Vec::new() };
    listing
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            (pattern.starts_with('.') || !name.starts_with('.')) && regex.is_match(&name)
        })
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .collect()
}

/// Python's `fnmatch`: whether `text` matches a shell glob.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    regex::Regex::new(&glob_regex(pattern)).is_ok_and(|regex| regex.is_match(text))
}

fn glob_regex(pattern: &str) -> String {
    let mut regex = String::from("^");
    let mut characters = pattern.chars().peekable();
    while let Some(character) = characters.next() {
        match character {
            '*' => regex.push_str(".*"),
            '?' => regex.push('.'),
            '[' => {
                let mut class = String::new();
                for inner in characters.by_ref() {
                    if inner == ']' {
                        break;
                    }
                    class.push(inner);
                }
                let class = match class.strip_prefix('!') {
                    Some(rest) => format!("^{rest}"),
                    None => class,
                };
                regex.push_str(&format!("[{}]", class.replace('\\', "\\\\")));
            }
            other => regex.push_str(&regex::escape(&other.to_string())),
        }
    }
    regex.push('$');
    regex
}

fn first_found(
    terms: &[Value],
    options: &Map<String, Value>,
    context: &Context,
    invocation: Invocation,
) -> Result<Vec<Value>, String> {
    // Through `with_first_found`, the directory searched follows the module's name.
    let subdir = match invocation {
        Invocation::Function => None,
        Invocation::Loop(module) => Some(
            ["template", "var", "file"]
                .into_iter()
                .find(|word| module.contains(word))
                .map(|word| format!("{word}s"))
                .unwrap_or_else(|| "files".to_string()),
        ),
    };
    let mut skip = option_bool(options, "skip", false);
    let mut candidates = Vec::new();
    let given = if terms.is_empty() {
        options.get("files").cloned().into_iter().collect()
    } else {
        terms.to_vec()
    };
    collect_candidates(&given, options, &mut candidates, &mut skip)?;
    for candidate in candidates {
        if let Some(path) = find(context, subdir.as_deref(), &candidate) {
            return Ok(vec![Value::from(normalize(&path))]);
        }
    }
    if skip {
        return Ok(Vec::new());
    }
    Err("No file was found when using first_found.".into())
}

fn collect_candidates(
    terms: &[Value],
    options: &Map<String, Value>,
    out: &mut Vec<String>,
    skip: &mut bool,
) -> Result<(), String> {
    for term in terms {
        let (files, paths) = match term {
            Value::Array(items) => {
                collect_candidates(items, options, out, skip)?;
                continue;
            }
            Value::String(text) => (vec![text.clone()], options.get("paths")),
            Value::Object(map) => {
                if let Some(flag) = map.get("skip") {
                    *skip = truthy(flag);
                }
                let files = match map.get("files") {
                    Some(Value::Array(items)) => items.iter().map(plain).collect(),
                    Some(other) => vec![plain(other)],
                    None => Vec::new(),
                };
                (files, map.get("paths").or(options.get("paths")))
            }
            other => {
                return Err(format!(
                    "Invalid term supplied. A string, dict or list is required, not '{}').",
                    python_type(other)
                ));
            }
        };
        let files: Vec<String> = files.iter().flat_map(|f| split_on(f, &[',', ';'])).collect();
        let paths: Vec<String> = match paths {
            Some(Value::Array(items)) => {
                items.iter().flat_map(|p| split_on(&plain(p), &[',', ':', ';'])).collect()
            }
            Some(other) => split_on(&plain(other), &[',', ':', ';']),
            None => Vec::new(),
        };
        if paths.is_empty() {
            out.extend(files);
        } else {
            for path in &paths {
                out.extend(
                    files.iter().map(|file| format!("{}/{file}", path.trim_end_matches('/'))),
                );
            }
        }
    }
    Ok(())
}

fn split_on(text: &str, separators: &[char]) -> Vec<String> {
    text.split(separators).filter(|part| !part.is_empty()).map(str::to_string).collect()
}

/// `a/./b/../c` as `a/c`, without following links, as ansible-core's unfrackpath.
fn normalize(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for component in path.components() {
        match component {
            std::path::Component::ParentDir => {
                parts.pop();
            }
            std::path::Component::CurDir => {}
            std::path::Component::RootDir => parts.clear(),
            other => parts.push(other.as_os_str().to_string_lossy().into_owned()),
        }
    }
    format!("/{}", parts.join("/"))
}

#[derive(Default)]
struct Sequence {
    start: i64,
    end: Option<i64>,
    count: Option<i64>,
    stride: i64,
    format: String,
}

fn sequence(terms: &[Value], options: &Map<String, Value>) -> Result<Vec<Value>, String> {
    let terms: Vec<Value> = if terms.is_empty() && !options.is_empty() {
        vec![Value::from("")]
    } else {
        terms.to_vec()
    };
    let mut out = Vec::new();
    for term in &terms {
        let mut spec = Sequence { start: 1, stride: 1, format: "%d".into(), ..Sequence::default() };
        for (key, value) in options {
            set_sequence_field(&mut spec, key, &plain(value))?;
        }
        let text = plain(term);
        if !parse_sequence_shortcut(&text, &mut spec)? {
            for word in text.split_whitespace() {
                let (key, value) = word.split_once('=').ok_or_else(|| {
                    format!("unknown error parsing with_sequence arguments: '{text}'")
                })?;
                if !["start", "end", "stride", "count", "format"].contains(&key) {
                    return Err(format!("unrecognized arguments to with_sequence: ['{key}']"));
                }
                set_sequence_field(&mut spec, key, value)?;
            }
        }
        out.extend(generate_sequence(&mut spec)?);
    }
    Ok(out)
}

fn set_sequence_field(spec: &mut Sequence, key: &str, value: &str) -> Result<(), String> {
    match key {
        "format" => spec.format = value.to_string(),
        "start" => spec.start = parse_number(key, value)?,
        "end" => spec.end = Some(parse_number(key, value)?),
        "count" => spec.count = Some(parse_number(key, value)?),
        "stride" => spec.stride = parse_number(key, value)?,
        other => return Err(format!("unrecognized arguments to with_sequence: ['{other}']")),
    }
    Ok(())
}

/// ansible-core types the sequence options as integers: decimal only (`0x0f` is refused).
fn parse_number(key: &str, text: &str) -> Result<i64, String> {
    text.trim().replace('_', "").parse::<i64>().map_err(|_| {
        format!(
            "Config '{key}' for 'sequence' lookup plugin from 'Direct' has an invalid value: \
             Invalid value provided for 'integer': '{text}'"
        )
    })
}

/// `[start-]end[/stride][:format]`; false when the text is not in that form.
fn parse_sequence_shortcut(text: &str, spec: &mut Sequence) -> Result<bool, String> {
    let number = r"(0?x?[0-9a-f]+)";
    let shortcut = regex::Regex::new(&format!(r"(?i)^({number}-)?{number}(/{number})?(:(.+))?$"))
        .map_err(|error| error.to_string())?;
    let Some(captures) = shortcut.captures(text) else { return Ok(false) };
    if let Some(start) = captures.get(2) {
        spec.start = parse_number("start", start.as_str())?;
    }
    if let Some(end) = captures.get(3) {
        spec.end = Some(parse_number("end", end.as_str())?);
    }
    if let Some(stride) = captures.get(5) {
        spec.stride = parse_number("stride", stride.as_str())?;
    }
    if let Some(format) = captures.get(7) {
        spec.format = format.as_str().to_string();
    }
    Ok(true)
}

fn generate_sequence(spec: &mut Sequence) -> Result<Vec<Value>, String> {
    match (spec.count, spec.end) {
        (None, None) => return Err("must specify count or end in with_sequence".into()),
        (Some(_), Some(_)) => {
            return Err("can't specify both count and end in with_sequence".into());
        }
        (Some(0), None) => return Ok(Vec::new()),
        (Some(count), None) => spec.end = Some(spec.start + count * spec.stride - 1),
        (None, Some(_)) => {}
    }
    let end = spec.end.unwrap_or(spec.start);
    if spec.stride > 0 && end < spec.start {
        return Err("to count backwards make stride negative".into());
    }
    if spec.stride < 0 && end > spec.start {
        return Err("to count forward don't make stride negative".into());
    }
    if spec.stride == 0 {
        return Ok(Vec::new());
    }
    if spec.format.matches('%').count() != 1 {
        return Err(format!("bad formatting string: {}", spec.format));
    }
    let mut out = Vec::new();
    let mut number = spec.start;
    while (spec.stride > 0 && number <= end) || (spec.stride < 0 && number >= end) {
        out.push(Value::from(printf(&spec.format, number)?));
        number += spec.stride;
    }
    Ok(out)
}

/// Python's `format % number` for one `%[flags][width]` conversion of d, i, x, X, o.
fn printf(format: &str, number: i64) -> Result<String, String> {
    let problem = || format!("problem formatting {number} with '{format}'");
    let (before, after) = format.split_once('%').ok_or_else(problem)?;
    let spec_end = after.find(|c: char| c.is_ascii_alphabetic()).ok_or_else(problem)?;
    let (flags, rest) = after.split_at(spec_end);
    let conversion = rest.chars().next().ok_or_else(problem)?;
    let tail = &rest[conversion.len_utf8()..];
    let zero = flags.starts_with('0');
    let left = flags.starts_with('-');
    let width: usize = flags.trim_start_matches(['0', '-']).parse().unwrap_or(0);
    let digits = match conversion {
        'd' | 'i' | 'u' => number.to_string(),
        'x' => format!("{number:x}"),
        'X' => format!("{number:X}"),
        'o' => format!("{number:o}"),
        _ => return Err(problem()),
    };
    let padded = if left {
        format!("{digits:<width$}")
    } else if zero {
        format!("{digits:0>width$}")
    } else {
        format!("{digits:>width$}")
    };
    Ok(format!("{before}{padded}{tail}"))
}

/// The subelements lookup (also behind the filter of that name).
pub fn subelements(terms: &[Value]) -> Result<Vec<Value>, String> {
    let usage = "subelements lookup expects a list of two or three items, ";
    if !(2..=3).contains(&terms.len()) {
        return Err(usage.to_string());
    }
    let Value::String(path) = &terms[1] else {
        return Err(format!(
            "{usage}first a dict or a list, second a string pointing to the subkey"
        ));
    };
    let elements: Vec<Value> = match &terms[0] {
        Value::Array(items) => items.clone(),
        Value::Object(map) if map.get("skipped").is_some_and(|s| s != &Value::Bool(false)) => {
            return Ok(Vec::new());
        }
        Value::Object(map) => map.values().cloned().collect(),
        _ => {
            return Err(format!(
                "{usage}first a dict or a list, second a string pointing to the subkey"
            ));
        }
    };
    let skip_missing = match terms.get(2) {
        Some(Value::Object(flags)) => option_bool(flags, "skip_missing", false),
        Some(_) => {
            return Err(format!(
                "{usage}the optional third item must be a dict with flags ['skip_missing']"
            ));
        }
        None => false,
    };
    let keys: Vec<&str> = path.split('.').collect();
    let mut out = Vec::new();
    for element in elements {
        let Value::Object(mut outer) = element else {
            return Err(format!(
                "subelements lookup expects a dictionary, got '{}'",
                crate::output::python_repr(&element)
            ));
        };
        if outer.get("skipped").is_some_and(|s| s != &Value::Bool(false)) {
            continue;
        }
        let Some(list) = take_subelement(&mut outer, &keys, skip_missing)? else { continue };
        for inner in list {
            out.push(Value::Array(vec![Value::Object(outer.clone()), inner]));
        }
    }
    Ok(out)
}

/// Takes the list at `keys` out of `outer` (ansible-core removes it from the first item).
fn take_subelement(
    outer: &mut Map<String, Value>,
    keys: &[&str],
    skip_missing: bool,
) -> Result<Option<Vec<Value>>, String> {
    let mut current = outer;
    for (index, key) in keys.iter().enumerate() {
        let last = index + 1 == keys.len();
        if !current.contains_key(*key) {
            if skip_missing {
                return Ok(None);
            }
            return Err(format!(
                "could not find '{key}' key in iterated item '{}'",
                crate::output::python_repr(&Value::Object(current.clone()))
            ));
        }
        if last {
            return match current.remove(*key) {
                Some(Value::Array(items)) => Ok(Some(items)),
                Some(other) => Err(format!(
                    "the key {key} should point to a list, got '{}'",
                    crate::output::python_repr(&other)
                )),
                None => Ok(None),
            };
        }
        match current.get_mut(*key) {
            Some(Value::Object(inner)) => current = inner,
            Some(other) if skip_missing => {
                let _ = other;
                return Ok(None);
            }
            Some(other) => {
                return Err(format!(
                    "the key {key} should point to a dictionary, got '{}'",
                    crate::output::python_repr(other)
                ));
            }
            None => return Ok(None),
        }
    }
    Ok(None)
}

fn together(terms: &[Value]) -> Result<Vec<Value>, String> {
    if terms.is_empty() {
        return Err("with_together requires at least one element in each list".into());
    }
    let lists: Vec<Vec<Value>> = terms.iter().map(as_list).collect();
    let longest = lists.iter().map(Vec::len).max().unwrap_or(0);
    Ok((0..longest)
        .map(|index| {
            let row: Vec<Value> =
                lists.iter().map(|list| list.get(index).cloned().unwrap_or(Value::Null)).collect();
            Value::Array(flatten_once(&row))
        })
        .collect())
}

fn as_list(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    }
}

fn nested(terms: &[Value]) -> Result<Vec<Value>, String> {
    let Some((first, rest)) = terms.split_first() else {
        return Err("with_nested requires at least one element in the nested list".into());
    };
    let mut rows: Vec<Value> = as_list(first);
    for list in rest {
        let mut combined = Vec::new();
        for row in &rows {
            for item in as_list(list) {
                combined.push(Value::Array(flatten_once(&[row.clone(), item])));
            }
        }
        rows = combined;
    }
    Ok(rows.iter().map(|row| Value::Array(flatten_once(std::slice::from_ref(row)))).collect())
}

/// `password`: the file's password, or a new random one written to it (mode 0600, its
/// directory created 0700), as ansible-core does.
fn password(
    terms: &[Value],
    options: &Map<String, Value>,
    context: &Context,
) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for term in terms {
        let text = plain(term);
        let (relative, mut parameters) = password_parameters(&text)?;
        for (key, value) in options {
            parameters.entry(key.clone()).or_insert_with(|| plain(value));
        }
        for unsupported in ["encrypt", "seed", "ident"] {
            if parameters.contains_key(unsupported) {
                return Err(format!("not supported yet: the password lookup's {unsupported}"));
            }
        }
        let length: usize = match parameters.get("length") {
            Some(length) => length.parse().map_err(|_| format!("invalid length {length}"))?,
            None => 20,
        };
        let characters = password_characters(parameters.get("chars").map(String::as_str));
        let base = context.raw().get("playbook_dir").map(plain).unwrap_or_else(|| ".".into());
        let path = if relative.starts_with('/') || relative.starts_with('~') {
            expand_home(&relative)
        } else {
            Path::new(&base).join(&relative)
        };
        if path != Path::new("/dev/null")
            && let Ok(existing) = std::fs::read_to_string(&path)
        {
            let existing = existing.trim_end();
            let plaintext = existing.rsplit_once(" salt=").map_or(existing, |(p, _)| p);
            out.push(Value::from(plaintext));
            continue;
        }
        let generated = random_password(length, &characters)?;
        if path != Path::new("/dev/null") {
            write_password(&path, &generated)?;
        }
        out.push(Value::from(generated));
    }
    Ok(out)
}

/// `path key=value ...` as the password lookup reads its term.
fn password_parameters(
    text: &str,
) -> Result<(String, std::collections::BTreeMap<String, String>), String> {
    let mut parameters = std::collections::BTreeMap::new();
    let Some((path, rest)) = text.split_once(' ') else {
        return Ok((text.to_string(), parameters));
    };
    for word in rest.split_whitespace() {
        let Some((key, value)) = word.split_once('=') else {
            return Err(
                "Unrecognized value after key=value parameters given to password lookup".into()
            );
        };
        if !["length", "encrypt", "chars", "ident", "seed"].contains(&key) {
            return Err(format!("Unrecognized parameter(s) given to password lookup: {key}"));
        }
        parameters.insert(key.to_string(), value.to_string());
    }
    Ok((path.to_string(), parameters))
}

/// `chars=ascii_letters,digits,,` names Python's string constants or gives characters.
fn password_characters(spec: Option<&str>) -> Vec<char> {
    let Some(spec) = spec else { return PASSWORD_CHARS.chars().collect() };
    let mut parts: Vec<&str> = Vec::new();
    if spec.contains(",,") {
        parts.push(",");
    }
    let spec = spec.replace(",,", ",");
    let mut text = String::new();
    for part in parts.into_iter().map(str::to_string).chain(spec.split(',').map(str::to_string)) {
        let lower = "abcdefghijklmnopqrstuvwxyz";
        let upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let expanded = match part.as_str() {
            "ascii_letters" => format!("{lower}{upper}"),
            "ascii_lowercase" => lower.to_string(),
            "ascii_uppercase" => upper.to_string(),
            "digits" => "0123456789".to_string(),
            "hexdigits" => "0123456789abcdefABCDEF".to_string(),
            "octdigits" => "01234567".to_string(),
            "punctuation" => "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~".to_string(),
            other => other.to_string(),
        };
        text.push_str(&expanded);
    }
    text.chars().filter(|c| *c != '"' && *c != '\'').collect()
}

fn random_password(length: usize, characters: &[char]) -> Result<String, String> {
    if characters.is_empty() {
        return Err("the password lookup has no characters to choose from".into());
    }
    let mut bytes = vec![0u8; length * 4];
    let mut source =
        std::fs::File::open("/dev/urandom").map_err(|error| format!("/dev/urandom: {error}"))?;
    std::io::Read::read_exact(&mut source, &mut bytes)
        .map_err(|error| format!("/dev/urandom: {error}"))?;
    Ok(bytes
        .chunks(4)
        .map(|chunk| {
            let number = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) as usize;
            characters[number % characters.len()]
        })
        .collect())
}

fn write_password(path: &Path, password: &str) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(directory) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(directory)
            .map_err(|error| format!("{}: {error}", directory.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|error| format!("{}: {error}", path.display()))?;
    std::io::Write::write_all(&mut file, format!("{password}\n").as_bytes())
        .map_err(|error| format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sequence_forms() {
        let none = Map::new();
        assert_eq!(json!(sequence(&[json!("4")], &none).unwrap()), json!(["1", "2", "3", "4"]));
        assert_eq!(
            json!(sequence(&[json!("2-10/4:h%02d")], &none).unwrap()),
            json!(["h02", "h06", "h10"])
        );
        assert_eq!(
            json!(sequence(&[json!("start=15 count=3 format=%04x")], &none).unwrap()),
            json!(["000f", "0010", "0011"])
        );
        assert!(sequence(&[json!("start=0x0f count=3")], &none).is_err());
        assert!(sequence(&[json!("start=1")], &none).is_err());
    }

    #[test]
    fn nested_and_together() {
        assert_eq!(
            json!(nested(&[json!([1, 2]), json!(["a", "b"])]).unwrap()),
            json!([[1, "a"], [1, "b"], [2, "a"], [2, "b"]])
        );
        assert_eq!(
            json!(together(&[json!([1, 2, 3]), json!(["a"])]).unwrap()),
            json!([[1, "a"], [2, null], [3, null]])
        );
    }

    #[test]
    fn subelements_takes_the_list_out() {
        let users = json!([{"name": "a", "keys": ["k1", "k2"]}, {"name": "b"}]);
        let found =
            subelements(&[users.clone(), json!("keys"), json!({"skip_missing": true})]).unwrap();
        assert_eq!(json!(found), json!([[{"name": "a"}, "k1"], [{"name": "a"}, "k2"]]));
        assert!(subelements(&[users, json!("keys")]).is_err());
    }

    #[test]
    fn lookup_results_are_shaped_like_ansible() {
        assert_eq!(shape(vec![json!("a"), json!("b")], false), json!("a,b"));
        assert_eq!(shape(vec![json!(1)], false), json!(1));
        assert_eq!(shape(vec![json!(1), json!("b")], false), json!([1, "b"]));
        assert_eq!(shape(vec![json!("a")], true), json!(["a"]));
    }

    #[test]
    fn globs() {
        assert!(regex::Regex::new(&glob_regex("*.t[xy]t")).unwrap().is_match("a.txt"));
        assert!(!regex::Regex::new(&glob_regex("?.conf")).unwrap().is_match("ab.conf"));
    }

    #[test]
    fn password_characters_spec() {
        assert_eq!(password_characters(Some("digits")).len(), 10);
        assert_eq!(password_characters(Some("ab,,")), vec![',', 'a', 'b']);
    }
}
