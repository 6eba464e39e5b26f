//! Tasks and blocks: keywords, the one module a task calls, and its arguments.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::display_string;
use super::role::RoleScope;
use crate::error::{Error, Mark, Result};
use crate::modules;
use crate::yaml::{self, Node};

/// One task as written, ready to be templated per host.
#[derive(Clone, Debug)]
pub struct Task {
    pub name: Option<String>,
    pub mark: Mark,
    pub body: TaskBody,
    /// Keywords such as `when`, `loop`, `register`, `notify`, `become`, as written.
    pub keywords: Map<String, Value>,
    pub role: Option<Arc<RoleScope>>,
}

#[derive(Clone, Debug)]
pub enum TaskBody {
    Module {
        module: &'static str,
        args: Map<String, Value>,
    },
    Block {
        block: Vec<Task>,
        rescue: Vec<Task>,
        always: Vec<Task>,
    },
    /// `include_tasks`: the file (maybe templated) is read when the task runs, relative to
    /// `base`, the directory of the file that holds the task.
    Include {
        file: String,
        base: std::path::PathBuf,
    },
    /// `include_role`: its arguments are templated and the role loaded when the task runs.
    IncludeRole {
        args: Map<String, Value>,
    },
}

const TASK_KEYWORDS: &[&str] = &[
    "name",
    "when",
    "loop",
    "loop_control",
    "register",
    "notify",
    "become",
    "become_user",
    "become_method",
    "become_flags",
    "vars",
    "changed_when",
    "failed_when",
    "ignore_errors",
    "ignore_unreachable",
    "tags",
    "listen",
    "delegate_to",
    "environment",
    "no_log",
    "check_mode",
    "diff",
    "run_once",
    "args",
    "until",
    "retries",
    "delay",
    "remote_user",
    "block",
    "rescue",
    "always",
    "action",
    "local_action",
    "any_errors_fatal",
    "timeout",
    "throttle",
    "delegate_facts",
    "connection",
    "port",
    "debugger",
    "collections",
    "module_defaults",
    "async",
    "poll",
];

/// Keywords read but not acted on yet: an error rather than a silent skip.
const TASK_KEYWORDS_UNSUPPORTED: &[&str] = &["debugger", "module_defaults", "async", "poll"];

/// Loads a list of tasks from a `tasks:`-like section.
/// What `loop_control` may hold; ansible-core refuses any other key at parse time.
const LOOP_CONTROL_KEYS: &[&str] =
    &["loop_var", "index_var", "label", "pause", "extended", "extended_allitems"];

/// `register:` names a variable, as ansible-core checks it at load time: an ASCII identifier
/// that is not one of Jinja's own names (`off` is the boolean false, not a name).
fn check_register(node: &Node) -> Result<()> {
    let value = node.to_value();
    let (shown, type_name) = match &value {
        Value::Null => return Ok(()),
        Value::String(name) if is_variable_name(name) => return Ok(()),
        Value::String(name) => (name.clone(), None),
        Value::Bool(flag) => (if *flag { "True" } else { "False" }.to_string(), Some("bool")),
        Value::Number(number) if number.is_f64() => (number.to_string(), Some("float")),
        Value::Number(number) => (number.to_string(), Some("int")),
        Value::Array(_) => return Err(invalid_register(node, "name of type 'list'")),
        Value::Object(_) => return Err(invalid_register(node, "name of type 'dict'")),
    };
    let described = match type_name {
        Some(kind) => format!("name '{shown}' of type '{kind}'"),
        None => format!("name '{shown}'"),
    };
    Err(invalid_register(node, &described))
}

fn invalid_register(node: &Node, described: &str) -> Error {
    Error::invalid(
        &node.mark,
        format!(
            "Invalid 'register' specified: Invalid variable {described}. Variable names must be \
             strings starting with a letter or underscore character, and contain only letters, \
             numbers and underscores."
        ),
    )
}

/// A name a variable can have: an ASCII identifier that Jinja does not read as a constant.
fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    starts_well
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !matches!(name, "true" | "false" | "none" | "True" | "False" | "None" | "not")
}

/// A misspelt `loop_control` key would otherwise be ignored and the loop run unlabelled.
fn check_loop_control(node: &Node) -> Result<()> {
    let Some(entries) = node.as_map() else {
        // A templated value is only known per host; the executor reads it then.
        return Ok(());
    };
    for (key, value) in entries {
        if key == "break_when" {
            return Err(Error::NotSupported {
                what: format!("{}: loop_control `break_when`", value.mark.location()),
            });
        }
        if !LOOP_CONTROL_KEYS.contains(&key.as_str()) {
            return Err(Error::invalid(
                &value.mark,
                format!(
                    "'{key}' is not a valid attribute for a LoopControl (expected one of {})",
                    LOOP_CONTROL_KEYS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

pub fn load_list(
    node: Option<&Node>,
    base: &Path,
    role: Option<&Arc<RoleScope>>,
) -> Result<Vec<Task>> {
    let Some(node) = node else { return Ok(Vec::new()) };
    if node.is_null() {
        return Ok(Vec::new());
    }
    let items = node.as_seq().ok_or_else(|| {
        Error::invalid(
            &node.mark,
            format!("expected a list of tasks, found a {}", node.type_name()),
        )
    })?;
    items.iter().map(|item| Task::load(item, base, role)).collect()
}

/// Loads a task file (for roles, `import_tasks` and `include_tasks`).
pub fn load_file(path: &Path, role: Option<&Arc<RoleScope>>) -> Result<Vec<Task>> {
    let node = yaml::load_file(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    load_list(Some(&node), base, role)
}

impl Task {
    fn load(node: &Node, base: &Path, role: Option<&Arc<RoleScope>>) -> Result<Task> {
        let entries = node.as_map().ok_or_else(|| {
            Error::invalid(
                &node.mark,
                format!("a task must be a mapping, found a {}", node.type_name()),
            )
        })?;
        let mut keywords = Map::new();
        let mut module: Option<(&str, &Node)> = None;
        for (key, value) in entries {
            if let Some(lookup) = key.strip_prefix("with_")
                && crate::template::lookups::NAMES.contains(&lookup)
            {
                if keywords.contains_key("loop") {
                    return Err(Error::invalid(
                        &value.mark,
                        format!("duplicate loop in task: {lookup}"),
                    ));
                }
                keywords.insert("loop".to_string(), value.to_value());
                keywords.insert("loop_with".to_string(), Value::from(lookup));
                continue;
            }
            if TASK_KEYWORDS_UNSUPPORTED.contains(&key.as_str()) {
                return Err(Error::NotSupported {
                    what: format!("{}: the task keyword `{key}`", value.mark.location()),
                });
            }
            if TASK_KEYWORDS.contains(&key.as_str()) {
                if key == "throttle" {
                    super::rollout::check_throttle(value)?;
                }
                if key == "loop_control" {
                    check_loop_control(value)?;
                }
                if key == "register" {
                    check_register(value)?;
                }
                keywords.insert(key.clone(), value.to_value());
                continue;
            }
            if let Some((first, _)) = module {
                // ansible-core's words, then what a misspelt keyword was probably meant to be.
                let hint = [first, key.as_str()]
                    .into_iter()
                    .filter(|name| modules::canonical(name).is_none())
                    .find_map(keyword_hint)
                    .unwrap_or_default();
                return Err(Error::invalid(
                    &node.mark,
                    format!("conflicting action statements: {first}, {key}{hint}"),
                ));
            }
            module = Some((key, value));
        }
        let name = keywords.remove("name").map(|value| display_string(&value));

        if let Some(block) = node.get("block") {
            if let Some((key, value)) = module {
                return Err(Error::invalid(
                    &value.mark,
                    format!("a block cannot also call the module `{key}`"),
                ));
            }
            let body = TaskBody::Block {
                block: load_list(Some(block), base, role)?,
                rescue: load_list(node.get("rescue"), base, role)?,
                always: load_list(node.get("always"), base, role)?,
            };
            for key in ["block", "rescue", "always"] {
                keywords.remove(key);
            }
            return Ok(Task { name, mark: node.mark.clone(), body, keywords, role: role.cloned() });
        }

        // `local_action:` is `action:` delegated to localhost.
        let action = match (node.get("action"), node.get("local_action")) {
            (Some(action), None) => Some(action),
            (None, Some(local)) => {
                keywords.remove("local_action");
                keywords.insert("delegate_to".into(), Value::from("localhost"));
                Some(local)
            }
            (Some(_), Some(local)) => {
                return Err(Error::invalid(
                    &local.mark,
                    "a task cannot have both `action:` and `local_action:`",
                ));
            }
            (None, None) => None,
        };
        if let Some(Value::String(text)) = keywords.get("run_once")
            && text.contains("{{")
        {
            return Err(Error::NotSupported {
                what: format!("{}: a templated run_once ({text})", node.mark.location()),
            });
        }
        let mut free_text = None;
        let (module_name, args_node) = match (module, action) {
            (Some((key, value)), None) => (key.to_string(), Some(value)),
            (None, Some(action)) => {
                keywords.remove("action");
                let (name, args, text) = action_form(action)?;
                free_text = text;
                (name, args)
            }
            (Some(_), Some(action)) => {
                return Err(Error::invalid(
                    &action.mark,
                    "a task cannot have both `action:` and a module key",
                ));
            }
            (None, None) => {
                return Err(Error::invalid(
                    &node.mark,
                    "this task calls no module; expected a module name such as `command:` or `copy:`",
                ));
            }
        };
        // Errors about the task point at the task, as Ansible's origins do.
        let mark = node.mark.clone();
        if let Some(body) = static_include(&module_name, args_node, base, role, &mark)? {
            return Ok(Task { name, mark: node.mark.clone(), body, keywords, role: role.cloned() });
        }
        let module = modules::canonical(&module_name).ok_or_else(|| {
            let hint = modules::fully_qualified(&module_name)
                .or_else(|| {
                    super::closest(short_name(&module_name), modules::NAMES).map(str::to_string)
                })
                .map(|best| format!("; did you mean `{best}`?"))
                .or_else(|| keyword_hint(&module_name))
                .unwrap_or_default();
            Error::invalid(&mark, format!("couldn't resolve module/action `{module_name}`{hint}"))
        })?;
        let mut args = match free_text {
            Some(text) => {
                free_form(module, &text).map_err(|message| Error::invalid(&mark, message))?
            }
            None => module_args(module, args_node, &mark)?,
        };
        if let Some(Value::Object(extra)) = keywords.remove("args") {
            for (key, value) in extra {
                args.entry(key).or_insert(value);
            }
        }
        modules::check_parameters(module, &args)
            .map_err(|message| Error::invalid(&mark, message))?;
        Ok(Task {
            name,
            mark: node.mark.clone(),
            body: TaskBody::Module { module, args },
            keywords,
            role: role.cloned(),
        })
    }

    /// The name shown in the TASK banner: `role : name`, or the module when unnamed.
    pub fn display_name(&self) -> String {
        let name = match (&self.name, &self.body) {
            (Some(name), _) => name.clone(),
            (None, TaskBody::Module { module, .. }) => module.to_string(),
            (None, TaskBody::Block { .. }) => "block".to_string(),
            (None, TaskBody::Include { .. }) => "include_tasks".to_string(),
            (None, TaskBody::IncludeRole { args }) => format!(
                "include_role : {}",
                args.get("name")
                    .or_else(|| args.get("role"))
                    .map(display_string)
                    .unwrap_or_default()
            ),
        };
        match &self.role {
            Some(role) => format!("{} : {name}", role.name),
            None => name,
        }
    }
}

/// "; did you mean `when`?" for a word close to a task keyword.
fn keyword_hint(word: &str) -> Option<String> {
    super::closest(word, TASK_KEYWORDS)
        .map(|keyword| format!("; `{word}` is not a module: did you mean the keyword `{keyword}`?"))
}

fn short_name(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

/// `action: copy src=a dest=b` is the same as `copy: src=a dest=b`: the module, its
/// arguments as a mapping node, or the free-form text after the module's name.
fn action_form(action: &Node) -> Result<(String, Option<&Node>, Option<String>)> {
    match action.as_str() {
        Some(text) => {
            let text = text.trim_start();
            let (name, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
            Ok((name.to_string(), None, Some(rest.trim_start().to_string())))
        }
        None => {
            let module = action.get("module").and_then(Node::as_str).ok_or_else(|| {
                Error::invalid(&action.mark, "action expects `module:` and its arguments")
            })?;
            Ok((module.to_string(), Some(action), None))
        }
    }
}

/// `import_tasks` / `include_tasks` with a literal file name become a block, loaded now.
fn static_include(
    module: &str,
    args: Option<&Node>,
    base: &Path,
    role: Option<&Arc<RoleScope>>,
    mark: &Mark,
) -> Result<Option<TaskBody>> {
    let short = short_name(module);
    if matches!(short, "import_role" | "include_role") {
        return role_include(short, args, base, role, mark).map(Some);
    }
    if !matches!(short, "import_tasks" | "include_tasks") {
        return Ok(None);
    }
    let file = match args.map(|node| (node.as_str(), node.get("file"))) {
        Some((Some(file), _)) => file.to_string(),
        Some((None, Some(file))) => file.as_str().unwrap_or_default().to_string(),
        _ => return Err(Error::invalid(mark, format!("{short} expects a file name"))),
    };
    if let Some(apply) = args.and_then(|node| node.get("apply")) {
        return Err(Error::NotSupported {
            what: format!("{}: `apply` on {short}", apply.mark.location()),
        });
    }
    if short == "include_tasks" {
        return Ok(Some(TaskBody::Include { file, base: base.to_path_buf() }));
    }
    if file.contains("{{") {
        return Err(Error::NotSupported {
            what: format!("{}: {short} with a templated file name", mark.location()),
        });
    }
    let path = base.join(&file);
    if !path.is_file() {
        return Err(Error::invalid(mark, format!("{short}: could not find {}", path.display())));
    }
    let block = super::importing(&path, mark, || load_file(&path, role))?;
    Ok(Some(TaskBody::Block { block, rescue: Vec::new(), always: Vec::new() }))
}

/// `import_role` becomes a block of the role's tasks now; `include_role` waits for run time.
fn role_include(
    short: &str,
    args: Option<&Node>,
    base: &Path,
    role: Option<&Arc<RoleScope>>,
    mark: &Mark,
) -> Result<TaskBody> {
    let arguments = match args.map(|node| (node, node.to_value())) {
        Some((_, Value::Object(map))) => map,
        Some((_, Value::String(text))) => {
            free_form(short, &text).map_err(|message| Error::invalid(mark, message))?
        }
        _ => return Err(Error::invalid(mark, format!("{short} expects `name:`, the role"))),
    };
    // Checked now, for both: a bad option fails before any host is touched.
    let reference = super::role::RoleReference::from_arguments(&arguments, mark, short)?;
    if short == "include_role" {
        return Ok(TaskBody::IncludeRole { args: arguments });
    }
    if let Some(apply) = arguments.get("apply") {
        let _ = apply;
        return Err(Error::invalid(mark, "Invalid options for import_role: apply"));
    }
    if reference.name.contains("{{") {
        return Err(Error::NotSupported {
            what: format!("{}: import_role with a templated role name", mark.location()),
        });
    }
    let _ = base;
    let playbook_dir = super::role::playbook_dir();
    let loaded = super::role::Role::from_reference(&reference, &playbook_dir, role)?;
    Ok(TaskBody::Block { block: loaded.tasks, rescue: Vec::new(), always: Vec::new() })
}

fn module_args(module: &str, node: Option<&Node>, mark: &Mark) -> Result<Map<String, Value>> {
    let Some(node) = node else { return Ok(Map::new()) };
    match node.to_value() {
        Value::Null => Ok(Map::new()),
        Value::Object(mut map) => {
            map.remove("module");
            if let Some(Value::String(cmd)) = map.remove("cmd") {
                if modules::takes_free_form(module) {
                    map.insert("_raw_params".to_string(), Value::String(cmd));
                } else {
                    map.insert("cmd".to_string(), Value::String(cmd));
                }
            }
            Ok(map)
        }
        Value::String(text) => {
            free_form(module, &text).map_err(|message| Error::invalid(mark, message))
        }
        _ => Err(Error::invalid(
            mark,
            format!("arguments of `{module}` must be a mapping or a `key=value` string"),
        )),
    }
}

/// Parses `key=value key2="a b"` and, for command-like modules, the command itself.
pub fn free_form(module: &str, text: &str) -> Result<Map<String, Value>, String> {
    let mut args = Map::new();
    let mut raw = String::new();
    let command_like = modules::takes_free_form(module);
    for (gap, word) in split_args(text)? {
        let assignment = word.split_once('=').filter(|(key, _)| {
            !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        match assignment {
            Some((key, value)) if !command_like || modules::FREE_FORM_OPTIONS.contains(&key) => {
                args.insert(key.to_string(), Value::String(unquote(&decode_escapes(value))));
            }
            // The command keeps its own spacing and newlines (a `shell: |` script).
            _ if command_like => {
                if !raw.is_empty() {
                    raw.push_str(&gap);
                }
                raw.push_str(&word);
            }
            _ => {
                return Err(format!(
                    "`{word}` is not `key=value`; `{module}` takes no free-form text"
                ));
            }
        }
    }
    if command_like && !raw.is_empty() {
        args.insert("_raw_params".to_string(), Value::String(raw));
    }
    Ok(args)
}

/// Python's escapes in a `key=value` word, decoded as ansible-core's parse_kv decodes them:
/// `content="new\n"` writes a newline. A backslash before anything else stays as written.
fn decode_escapes(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut index = 0;
    while index < chars.len() {
        let (decoded, used) = match (chars[index], chars.get(index + 1)) {
            ('\\', Some(&next)) => escape_at(&chars[index + 1..], next),
            _ => (None, 1),
        };
        match decoded {
            Some(ch) => out.push(ch),
            None => out.push(chars[index]),
        }
        index += if decoded.is_some() { used } else { 1 };
    }
    out
}

/// The character an escape after a backslash stands for, and how many characters (with the
/// backslash) it takes.
fn escape_at(rest: &[char], next: char) -> (Option<char>, usize) {
    let simple = match next {
        '\\' => Some('\\'),
        '\'' => Some('\''),
        '"' => Some('"'),
        'a' => Some('\x07'),
        'b' => Some('\x08'),
        'f' => Some('\x0c'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\x0b'),
        _ => None,
    };
    if simple.is_some() {
        return (simple, 2);
    }
    let hex = |digits: usize| -> (Option<char>, usize) {
        let text: String = rest.iter().skip(1).take(digits).collect();
        let valid = text.len() == digits && text.chars().all(|c| c.is_ascii_hexdigit());
        let ch = valid.then(|| u32::from_str_radix(&text, 16).ok().and_then(char::from_u32));
        (ch.flatten(), digits + 2)
    };
    match next {
        'x' => hex(2),
        'u' => hex(4),
        'U' => hex(8),
        '0'..='7' => {
            let digits: String =
                rest.iter().take(3).take_while(|c| ('0'..='7').contains(c)).collect();
            let ch = u32::from_str_radix(&digits, 8).ok().and_then(char::from_u32);
            (ch, digits.len() + 1)
        }
        _ => (None, 1),
    }
}

fn unquote(text: &str) -> String {
    let bytes = text.as_bytes();
    let quoted = bytes.len() >= 2
        && (bytes[0] == b'"' || bytes[0] == b'\'')
        && bytes[bytes.len() - 1] == bytes[0];
    if quoted { text[1..text.len() - 1].to_string() } else { text.to_string() }
}

/// Splits on spaces outside quotes and `{{ }}`, keeping quotes (the command needs them).
/// Each word comes with the whitespace that preceded it.
fn split_args(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut words = Vec::new();
    let mut gap = String::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    let characters: Vec<char> = text.chars().collect();
    for (index, &character) in characters.iter().enumerate() {
        let next = characters.get(index + 1).copied();
        match character {
            '{' if matches!(next, Some('{' | '%')) => depth += 1,
            '}' | '%' if next == Some('}') && depth > 0 => depth -= 1,
            // A backslash-escaped quote neither opens nor closes, as in ansible-core.
            '"' | '\'' if index > 0 && characters[index - 1] == '\\' => {}
            '"' | '\'' if quote == Some(character) => quote = None,
            '"' | '\'' if quote.is_none() && depth == 0 => quote = Some(character),
            c if c.is_whitespace() && quote.is_none() && depth == 0 => {
                if !current.is_empty() {
                    words.push((std::mem::take(&mut gap), std::mem::take(&mut current)));
                }
                gap.push(c);
                continue;
            }
            _ => {}
        }
        current.push(character);
    }
    if quote.is_some() {
        return Err(format!("unbalanced quotes in `{text}`"));
    }
    if !current.is_empty() {
        words.push((gap, current));
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::free_form;
    use serde_json::json;

    #[test]
    fn shell_block_keeps_its_newlines() {
        let args = free_form("shell", "set -e\nif true; then\n  echo  hi\nfi\n").unwrap();
        assert_eq!(json!(args), json!({"_raw_params": "set -e\nif true; then\n  echo  hi\nfi"}));
    }

    #[test]
    fn command_free_form_keeps_options_apart() {
        let args = free_form("command", "echo 'a b' creates=/tmp/x").unwrap();
        assert_eq!(json!(args), json!({"creates": "/tmp/x", "_raw_params": "echo 'a b'"}));
    }

    #[test]
    fn key_value_with_template() {
        let args = free_form("debug", "msg={{ item }}").unwrap();
        assert_eq!(json!(args), json!({"msg": "{{ item }}"}));
        let args = free_form("copy", "dest=/x content=\"a b\"").unwrap();
        assert_eq!(json!(args), json!({"dest": "/x", "content": "a b"}));
    }

    #[test]
    fn key_value_escapes_are_decoded_as_ansible_does() {
        let args = free_form("copy", r#"content="new\n\tx\x41\u00e9\101\\ \d" dest=/x"#).unwrap();
        assert_eq!(json!(args), json!({"content": "new\n\txA\u{e9}A\\ \\d", "dest": "/x"}));
        // The command itself keeps its backslashes: the shell reads them.
        let args = free_form("shell", r"printf 'a\n'").unwrap();
        assert_eq!(json!(args), json!({"_raw_params": r"printf 'a\n'"}));
    }

    #[test]
    fn stray_word_is_an_error() {
        assert!(free_form("copy", "dest=/x oops").is_err());
    }
}
