//! Ansible's filters and tests on top of minijinja's Jinja2 builtins.

use std::cmp::Ordering;

use base64::Engine;
use minijinja::value::{Kwargs, Rest, Value};
use minijinja::{Environment, Error, ErrorKind, State};
use regex::Regex;
use sha2::Digest;

pub fn register(environment: &mut Environment<'static>) {
    environment.add_filter("default", default);
    environment.add_filter("d", default);
    environment.add_filter("bool", to_bool);
    environment.add_filter("to_json", to_json);
    environment.add_filter("to_nice_json", to_nice_json);
    environment.add_filter("from_json", from_json);
    environment.add_function("now", super::datetime::now);
    environment.add_filter("int", super::numbers::int);
    environment.add_filter("float", super::numbers::float);
    environment.add_filter("to_yaml", to_yaml);
    environment.add_filter("to_nice_yaml", to_nice_yaml);
    environment.add_filter("regex_replace", regex_replace);
    environment.add_filter("regex_search", regex_search);
    environment.add_filter("regex_findall", regex_findall);
    environment.add_filter("basename", basename);
    environment.add_filter("dirname", dirname);
    environment.add_filter("quote", quote);
    environment.add_filter("b64encode", b64encode);
    environment.add_filter("b64decode", b64decode);
    environment.add_filter("combine", combine);
    environment.add_filter("dict2items", dict2items);
    environment.add_filter("extract", extract);
    environment.add_filter("mandatory", mandatory);
    environment.add_filter("ternary", ternary);
    environment.add_filter("hash", hash);
    environment.add_filter("flatten", flatten);
    environment.add_filter("difference", difference);
    environment.add_filter("union", union);
    environment.add_filter("type_debug", type_debug);
    environment.add_filter("items2dict", items2dict);
    environment.add_filter("from_yaml", from_yaml);
    environment.add_filter("intersect", intersect);
    environment.add_filter("symmetric_difference", symmetric_difference);
    environment.add_filter("product", product);
    environment.add_filter("regex_escape", regex_escape);
    environment.add_filter("md5", |text: &str| format!("{:x}", md5::compute(text.as_bytes())));
    environment.add_filter("sha1", sha1_hex);
    environment.add_filter("checksum", sha1_hex);
    environment.add_filter("subelements", subelements);
    environment.add_filter("splitext", splitext);
    environment.add_filter("expanduser", expanduser);
    environment.add_filter("password_hash", password_hash);
    for name in ["subset", "issubset"] {
        environment.add_test(name, |a: Value, b: Value| contains_all(&b, &a));
    }
    for name in ["superset", "issuperset"] {
        environment.add_test(name, |a: Value, b: Value| contains_all(&a, &b));
    }
    environment.add_test("contains", |container: Value, item: Value| {
        Ok::<bool, Error>(list_of(&container)?.contains(&json_of(&item)?))
    });
    environment.add_test("truthy", |value: Value| value.is_true());
    environment.add_test("falsy", |value: Value| !value.is_true());
    for name in ["succeeded", "success"] {
        environment.add_test(name, |result: Value| !flag(&result, "failed"));
    }
    for name in ["failed", "failure"] {
        environment.add_test(name, |result: Value| flag(&result, "failed"));
    }
    for name in ["changed", "change"] {
        environment.add_test(name, |result: Value| flag(&result, "changed"));
    }
    for name in ["skipped", "skip"] {
        environment.add_test(name, |result: Value| flag(&result, "skipped"));
    }
    environment.add_test("match", |text: &str, pattern: &str| {
        regex_test(text, &format!("^(?:{pattern})"))
    });
    environment.add_test("search", |text: &str, pattern: &str| regex_test(text, pattern));
    environment.add_test("regex", |text: &str, pattern: &str| regex_test(text, pattern));
    environment.add_test("version", version_test);
    environment.add_test("version_compare", version_test);
}

/// The Python type name Ansible reports for a value.
pub fn type_debug(value: Value) -> &'static str {
    use minijinja::value::ValueKind;
    if let Some(name) = super::datetime::type_name(&value) {
        return name;
    }
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => "NoneType",
        ValueKind::Bool => "bool",
        ValueKind::Number if value.is_integer() => "int",
        ValueKind::Number => "float",
        ValueKind::String => "str",
        ValueKind::Bytes => "bytes",
        ValueKind::Seq | ValueKind::Iterable => "list",
        ValueKind::Map => "dict",
        _ => "object",
    }
}

fn flag(result: &Value, key: &str) -> bool {
    result.get_attr(key).map(|value| value.is_true()).unwrap_or(false)
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, message.into())
}

fn default(value: Value, other: Option<Value>, lax: Option<bool>) -> Value {
    let other = other.unwrap_or_else(|| Value::from(""));
    if value.is_undefined()
        || value.is_none() && lax.unwrap_or(false)
        || lax.unwrap_or(false) && !value.is_true()
    {
        other
    } else {
        value
    }
}

/// Ansible's `bool`: yes/on/1/true (any case) are true.
fn to_bool(value: Value) -> bool {
    match value.as_str() {
        Some(text) => matches!(
            text.trim().to_ascii_lowercase().as_str(),
            "yes" | "on" | "1" | "true" | "y" | "t"
        ),
        None => value.is_true(),
    }
}

fn json_of(value: &Value) -> Result<serde_json::Value, Error> {
    super::datetime::as_data(|| serde_json::to_value(value))
        .map_err(|error| invalid(format!("cannot convert to JSON: {error}")))
}

/// Python's `json.dumps` spacing (`[1, 2]`, `{"a": 1}`) and ASCII escapes, as Ansible's
/// `to_json` writes it.
fn to_json(value: Value) -> Result<String, Error> {
    Ok(crate::output::python_json_ascii(&json_of(&value)?, None, false))
}

fn to_nice_json(value: Value, kwargs: Kwargs) -> Result<String, Error> {
    let indent: usize = kwargs.get::<Option<usize>>("indent")?.unwrap_or(4);
    kwargs.assert_all_used()?;
    Ok(crate::output::python_json_ascii(&json_of(&value)?, Some(indent), true))
}

fn to_yaml(value: Value, kwargs: Kwargs) -> Result<String, Error> {
    yaml_with(value, crate::template::yaml_dump::Options::terse(), kwargs)
}

/// `indent` may also come positionally, as in `to_nice_yaml(2)`.
fn to_nice_yaml(value: Value, indent: Option<usize>, kwargs: Kwargs) -> Result<String, Error> {
    let mut options = crate::template::yaml_dump::Options::nice();
    if let Some(indent) = indent {
        options.indent = indent;
    }
    yaml_with(value, options, kwargs)
}

/// Applies the dumper's keyword arguments; PyYAML's others (`default_style`, `canonical`,
/// `line_break`, `encoding`, …) are refused by name rather than ignored; `allow_unicode` is
/// always on, as Ansible passes it itself.
fn yaml_with(
    value: Value,
    mut options: crate::template::yaml_dump::Options,
    kwargs: Kwargs,
) -> Result<String, Error> {
    const SUPPORTED: &[&str] =
        &["indent", "width", "sort_keys", "default_flow_style", "explicit_start", "explicit_end"];
    if let Some(other) = kwargs.args().find(|name| !SUPPORTED.contains(name)) {
        return Err(invalid(format!("to_yaml: the `{other}` option is not supported yet")));
    }
    options.indent = kwargs.get::<Option<usize>>("indent")?.unwrap_or(options.indent);
    options.width = kwargs.get::<Option<usize>>("width")?.unwrap_or(options.width);
    options.sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(options.sort_keys);
    if let Some(flow) = kwargs.get::<Option<Value>>("default_flow_style")? {
        options.flow = if flow.is_none() { None } else { Some(flow.is_true()) };
    }
    options.explicit_start = kwargs.get::<Option<bool>>("explicit_start")?.unwrap_or(false);
    options.explicit_end = kwargs.get::<Option<bool>>("explicit_end")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    Ok(crate::template::yaml_dump::dump(&json_of(&value)?, &options))
}

fn from_json(text: &str) -> Result<Value, Error> {
    let parsed: serde_json::Value =
        serde_json::from_str(text).map_err(|error| invalid(format!("from_json: {error}")))?;
    Ok(Value::from(minijinja::value::Serde(&parsed)))
}

fn compile(pattern: &str, ignorecase: bool) -> Result<Regex, Error> {
    let pattern = if ignorecase { format!("(?i){pattern}") } else { pattern.to_string() };
    Regex::new(&pattern).map_err(|error| invalid(format!("invalid regular expression: {error}")))
}

/// Python's `\1` / `\g<name>` replacements become the regex crate's `${1}` / `${name}`.
fn python_replacement(replacement: &str) -> String {
    let mut out = String::new();
    let mut characters = replacement.chars().peekable();
    while let Some(character) = characters.next() {
        match (character, characters.peek().copied()) {
            ('\\', Some(digit)) if digit.is_ascii_digit() => {
                characters.next();
                out.push_str(&format!("${{{digit}}}"));
            }
            ('\\', Some('g')) => {
                characters.next();
                let name: String = characters.by_ref().skip(1).take_while(|c| *c != '>').collect();
                out.push_str(&format!("${{{name}}}"));
            }
            ('$', _) => out.push_str("$$"),
            _ => out.push(character),
        }
    }
    out
}

fn regex_replace(
    text: &str,
    pattern: &str,
    replacement: Option<&str>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let ignorecase: bool = kwargs.get::<Option<bool>>("ignorecase")?.unwrap_or(false);
    let regex = compile(pattern, ignorecase)?;
    Ok(regex.replace_all(text, python_replacement(replacement.unwrap_or(""))).into_owned())
}

fn regex_search(text: &str, pattern: &str, groups: Rest<String>) -> Result<Value, Error> {
    let regex = compile(pattern, false)?;
    let Some(captures) = regex.captures(text) else { return Ok(Value::from(())) };
    if groups.is_empty() {
        return Ok(Value::from(captures.get(0).map(|m| m.as_str()).unwrap_or("")));
    }
    let picked: Vec<Value> = groups
        .iter()
        .map(|group| {
            let found = match group.strip_prefix('\\').and_then(|n| n.parse::<usize>().ok()) {
                Some(index) => captures.get(index),
                None => captures.name(group.trim_start_matches("\\g<").trim_end_matches('>')),
            };
            Value::from(found.map(|m| m.as_str()).unwrap_or(""))
        })
        .collect();
    Ok(Value::from(picked))
}

fn regex_findall(text: &str, pattern: &str) -> Result<Vec<String>, Error> {
    let regex = compile(pattern, false)?;
    Ok(regex.find_iter(text).map(|m| m.as_str().to_string()).collect())
}

fn basename(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

fn dirname(path: &str) -> String {
    match path.rfind('/') {
        Some(0) => "/".to_string(),
        Some(index) => path[..index].to_string(),
        None => String::new(),
    }
}

fn quote(value: Value) -> String {
    crate::connection::quote(&value.to_string())
}

fn b64encode(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn b64decode(text: &str) -> Result<String, Error> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|error| invalid(format!("b64decode: {error}")))?;
    String::from_utf8(bytes).map_err(|_| invalid("b64decode: the result is not UTF-8 text"))
}

fn merge(base: &mut serde_json::Value, overlay: serde_json::Value, recursive: bool) {
    match (base, overlay) {
        (serde_json::Value::Object(base), serde_json::Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(existing) if recursive && existing.is_object() && value.is_object() => {
                        merge(existing, value, true)
                    }
                    _ => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

fn combine(value: Value, others: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let recursive: bool = kwargs.get::<Option<bool>>("recursive")?.unwrap_or(false);
    let _: Option<String> = kwargs.get("list_merge")?;
    kwargs.assert_all_used()?;
    let mut merged = json_of(&value)?;
    for other in others.iter() {
        let other = json_of(other)?;
        let overlays = match other {
            serde_json::Value::Array(items) => items,
            single => vec![single],
        };
        for overlay in overlays {
            if !overlay.is_object() {
                return Err(invalid("combine expects mappings"));
            }
            merge(&mut merged, overlay, recursive);
        }
    }
    Ok(Value::from(minijinja::value::Serde(&merged)))
}

fn dict2items(value: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let key_name: String =
        kwargs.get::<Option<String>>("key_name")?.unwrap_or_else(|| "key".into());
    let value_name: String =
        kwargs.get::<Option<String>>("value_name")?.unwrap_or_else(|| "value".into());
    let serde_json::Value::Object(map) = json_of(&value)? else {
        return Err(invalid("dict2items expects a mapping"));
    };
    let items: Vec<serde_json::Value> = map
        .into_iter()
        .map(|(key, item)| serde_json::json!({ key_name.clone(): key, value_name.clone(): item }))
        .collect();
    Ok(Value::from(minijinja::value::Serde(&items)))
}

/// `key | extract(container, morekeys)`: `container[key]`, then each of `morekeys` in turn
/// (one key or a list), as `map('extract', hostvars, 'x')` uses it.
fn extract(key: Value, container: Value, more: Option<Value>) -> Result<Value, Error> {
    let mut keys = vec![key];
    match more {
        Some(more) if more.kind() == minijinja::value::ValueKind::Seq => {
            keys.extend(more.try_iter()?)
        }
        Some(more) if !more.is_none() && !more.is_undefined() => keys.push(more),
        _ => {}
    }
    let mut value = container;
    for key in keys {
        let next = value.get_item(&key)?;
        if next.is_undefined() {
            return Err(Error::new(
                ErrorKind::UndefinedError,
                format!("'{} object' has no attribute '{key}'", type_debug(value.clone())),
            ));
        }
        value = next;
    }
    Ok(value)
}

fn mandatory(value: Value, message: Option<String>) -> Result<Value, Error> {
    if value.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            message.unwrap_or_else(|| "Mandatory variable not defined.".into()),
        ));
    }
    Ok(value)
}

fn ternary(value: Value, yes: Value, no: Value, none: Option<Value>) -> Value {
    match (value.is_none(), none) {
        (true, Some(none)) => none,
        _ if value.is_true() => yes,
        _ => no,
    }
}

fn hash(text: &str, algorithm: Option<&str>) -> Result<String, Error> {
    match algorithm.unwrap_or("sha1") {
        "sha1" => Ok(sha1_hex(text)),
        "md5" => Ok(format!("{:x}", md5::compute(text.as_bytes()))),
        "sha256" => Ok(hex::encode(sha2::Sha256::digest(text.as_bytes()))),
        "sha512" => Ok(hex::encode(sha2::Sha512::digest(text.as_bytes()))),
        other => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("not supported yet: hash('{other}'); use sha1, md5, sha256 or sha512"),
        )),
    }
}

fn flatten(value: Value, levels: Option<usize>) -> Result<Value, Error> {
    fn walk(value: &serde_json::Value, depth: Option<usize>, out: &mut Vec<serde_json::Value>) {
        match value {
            serde_json::Value::Array(items) if depth != Some(0) => {
                for item in items {
                    walk(item, depth.map(|d| d - 1), out);
                }
            }
            serde_json::Value::Null => {}
            other => out.push(other.clone()),
        }
    }
    let mut out = Vec::new();
    if let serde_json::Value::Array(items) = json_of(&value)? {
        for item in &items {
            walk(item, levels, &mut out);
        }
    }
    Ok(Value::from(minijinja::value::Serde(&out)))
}

fn list_of(value: &Value) -> Result<Vec<serde_json::Value>, Error> {
    match json_of(value)? {
        serde_json::Value::Array(items) => Ok(items),
        _ => Err(invalid("expected a list")),
    }
}

fn difference(value: Value, other: Value) -> Result<Value, Error> {
    let other = list_of(&other)?;
    let mut out: Vec<serde_json::Value> = Vec::new();
    for item in list_of(&value)? {
        if !other.contains(&item) && !out.contains(&item) {
            out.push(item);
        }
    }
    Ok(Value::from(minijinja::value::Serde(&out)))
}

fn union(value: Value, other: Value) -> Result<Value, Error> {
    let mut out: Vec<serde_json::Value> = Vec::new();
    for item in list_of(&value)?.into_iter().chain(list_of(&other)?) {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    Ok(Value::from(minijinja::value::Serde(&out)))
}

fn to_jinja(value: &serde_json::Value) -> Value {
    Value::from(minijinja::value::Serde(value))
}

/// `items2dict`: a list of `{key, value}` mappings (or other names) as one mapping.
fn items2dict(value: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let key_name: String =
        kwargs.get::<Option<String>>("key_name")?.unwrap_or_else(|| "key".into());
    let value_name: String =
        kwargs.get::<Option<String>>("value_name")?.unwrap_or_else(|| "value".into());
    kwargs.assert_all_used()?;
    let mut out = serde_json::Map::new();
    for item in list_of(&value)? {
        let (Some(key), Some(item_value)) = (item.get(&key_name), item.get(&value_name)) else {
            return Err(invalid(format!(
                "items2dict requires each item to have '{key_name}' and '{value_name}' keys"
            )));
        };
        out.insert(crate::playbook::display_string(key), item_value.clone());
    }
    Ok(to_jinja(&serde_json::Value::Object(out)))
}

fn from_yaml(text: &str) -> Result<Value, Error> {
    let node = crate::yaml::load_str(std::path::Path::new("<from_yaml>"), text.to_string())
        .map_err(|error| invalid(format!("from_yaml: {error}")))?;
    Ok(to_jinja(&node.to_value()))
}

/// Whether every element of `part` is in `whole` (sets of list elements).
fn contains_all(whole: &Value, part: &Value) -> Result<bool, Error> {
    let whole = list_of(whole)?;
    Ok(list_of(part)?.iter().all(|item| whole.contains(item)))
}

fn intersect(value: Value, other: Value) -> Result<Value, Error> {
    let other = list_of(&other)?;
    let mut out: Vec<serde_json::Value> = Vec::new();
    for item in list_of(&value)? {
        if other.contains(&item) && !out.contains(&item) {
            out.push(item);
        }
    }
    Ok(to_jinja(&serde_json::Value::Array(out)))
}

fn symmetric_difference(value: Value, other: Value) -> Result<Value, Error> {
    let (left, right) = (list_of(&value)?, list_of(&other)?);
    let mut out: Vec<serde_json::Value> = Vec::new();
    for item in
        left.iter().filter(|i| !right.contains(i)).chain(right.iter().filter(|i| !left.contains(i)))
    {
        if !out.contains(item) {
            out.push(item.clone());
        }
    }
    Ok(to_jinja(&serde_json::Value::Array(out)))
}

/// The cartesian product of lists, as Python's itertools.product gives it (lists of items).
fn product(value: Value, others: Rest<Value>) -> Result<Value, Error> {
    let mut rows: Vec<Vec<serde_json::Value>> =
        list_of(&value)?.into_iter().map(|i| vec![i]).collect();
    for other in others.iter() {
        let items = list_of(other)?;
        rows = rows
            .iter()
            .flat_map(|row| {
                items.iter().map(move |item| {
                    let mut next = row.clone();
                    next.push(item.clone());
                    next
                })
            })
            .collect();
    }
    let rows: Vec<serde_json::Value> = rows.into_iter().map(serde_json::Value::Array).collect();
    Ok(to_jinja(&serde_json::Value::Array(rows)))
}

/// Python's `re.escape`: every character but letters, digits and `_` gets a backslash.
fn regex_escape(text: &str) -> String {
    let mut out = String::new();
    for character in text.chars() {
        if !(character.is_alphanumeric() || character == '_') {
            out.push('\\');
        }
        out.push(character);
    }
    out
}

fn sha1_hex(text: &str) -> String {
    use sha1::Digest as _;
    hex::encode(sha1::Sha1::digest(text.as_bytes()))
}

/// The `subelements` filter: the subelements lookup on a list and a key path.
fn subelements(value: Value, key: &str, skip_missing: Option<bool>) -> Result<Value, Error> {
    let mut terms = vec![json_of(&value)?, serde_json::Value::from(key)];
    if let Some(skip) = skip_missing {
        terms.push(serde_json::json!({ "skip_missing": skip }));
    }
    let pairs = crate::template::lookups::subelements(&terms).map_err(invalid)?;
    Ok(to_jinja(&serde_json::Value::Array(pairs)))
}

/// Python's `os.path.splitext`: `[root, extension]`.
fn splitext(path: &str) -> Value {
    let name_start = path.rfind('/').map_or(0, |index| index + 1);
    let name = &path[name_start..];
    let dot = name
        .trim_start_matches('.')
        .rfind('.')
        .map(|i| i + (name.len() - name.trim_start_matches('.').len()));
    let (root, extension) = match dot {
        Some(index) => (&path[..name_start + index], &path[name_start + index..]),
        None => (path, ""),
    };
    Value::from(vec![Value::from(root), Value::from(extension)])
}

fn expanduser(path: &str) -> String {
    match (path.strip_prefix('~'), std::env::var("HOME")) {
        (Some(rest), Ok(home)) if rest.is_empty() || rest.starts_with('/') => {
            format!("{home}{rest}")
        }
        _ => path.to_string(),
    }
}

fn password_hash(_: Value, _: Rest<Value>) -> Result<Value, Error> {
    Err(invalid("not supported yet: the password_hash filter (crypt hashes)"))
}

fn regex_test(text: &str, pattern: &str) -> Result<bool, Error> {
    Ok(compile(pattern, false)?.is_match(text))
}

fn version_parts(text: &str) -> Vec<u64> {
    text.trim_start_matches('v')
        .split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty())
        .map(|part| part.parse().unwrap_or(0))
        .collect()
}

/// `'1.10' is version('1.9', '>')`, comparing numerically part by part.
fn version_test(
    _: &State,
    value: Value,
    other: &str,
    operator: Option<&str>,
) -> Result<bool, Error> {
    let (left, right) = (version_parts(&value.to_string()), version_parts(other));
    let length = left.len().max(right.len());
    let pad = |mut parts: Vec<u64>| {
        parts.resize(length, 0);
        parts
    };
    let ordering = pad(left).cmp(&pad(right));
    let result = match operator.unwrap_or("eq") {
        "==" | "=" | "eq" => ordering == Ordering::Equal,
        "!=" | "<>" | "ne" => ordering != Ordering::Equal,
        "<" | "lt" => ordering == Ordering::Less,
        "<=" | "le" => ordering != Ordering::Greater,
        ">" | "gt" => ordering == Ordering::Greater,
        ">=" | "ge" => ordering != Ordering::Less,
        other => return Err(invalid(format!("unknown version comparison operator `{other}`"))),
    };
    Ok(result)
}
