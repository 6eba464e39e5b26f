//! What the terminal shows, in ansible-playbook's default format: banners, per-host result
//! lines, and the recap.

mod json;
mod progress;

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{Map, Value};

pub use json::{python_float_repr, python_json, python_json_ascii};
pub use progress::{Progress, clear_progress, suspend};

/// The outcome of one task on one host, as the recap counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    Changed,
    Skipped,
    Failed,
    Ignored,
    Unreachable,
}

/// Per-host counters for PLAY RECAP.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub ok: usize,
    pub changed: usize,
    pub unreachable: usize,
    pub failed: usize,
    pub skipped: usize,
    pub rescued: usize,
    pub ignored: usize,
}

/// Writes to stdout. A closed stdout (`bramble … | head`) is no reason to stop or panic, as
/// `println!` would: the rest of the output is dropped.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// Writes to stderr, as [`out`] to stdout: a closed stderr drops the text.
pub fn err(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes());
    let _ = stderr.flush();
}

/// Writes ansible-playbook's default output to stdout.
#[derive(Debug)]
pub struct Display {
    pub verbosity: u8,
    pub columns: usize,
    /// `[ERROR]` blocks already shown: ansible-core shows an identical one only once.
    errors_shown: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl Display {
    pub fn new(verbosity: u8) -> Display {
        Display { verbosity, columns: 80, errors_shown: Default::default() }
    }

    /// `\nPLAY [name] ****…`, padded with stars to the terminal width.
    pub fn banner(&self, text: &str) {
        let stars = self.columns.saturating_sub(text.len() + 1).max(3);
        self.print(&format!("\n{text} {}", "*".repeat(stars)));
    }

    pub fn print(&self, text: &str) {
        suspend(|| out(&format!("{text}\n")));
    }

    /// Ansible's `[WARNING]: …` on stderr.
    pub fn warning(&self, text: &str) {
        crate::output::err(&format!("[WARNING]: {text}\n"));
    }

    /// One result line such as `changed: [pi1] => (item=x)`, with the result when verbose.
    pub fn result_line(
        &self,
        host: &str,
        status: Status,
        result: &Map<String, Value>,
        item: Option<&str>,
    ) -> String {
        let label = match status {
            Status::Ok => "ok",
            Status::Changed => "changed",
            Status::Skipped => "skipping",
            Status::Failed | Status::Ignored => "fatal",
            Status::Unreachable => "fatal",
        };
        let mut line = match status {
            Status::Failed | Status::Ignored => format!("{label}: [{host}]: FAILED!"),
            Status::Unreachable => format!("{label}: [{host}]: UNREACHABLE!"),
            _ => format!("{label}: [{host}]"),
        };
        if let Some(item) = item {
            line.push_str(&format!(" => (item={item})"));
            if status == Status::Skipped {
                line.push(' ');
            }
        }
        let shown = self.visible_result(status, result);
        if let Some(shown) = shown {
            line.push_str(" => ");
            line.push_str(&shown);
        }
        if status == Status::Ignored {
            line.push_str("\n...ignoring");
        }
        line
    }

    fn visible_result(&self, status: Status, result: &Map<String, Value>) -> Option<String> {
        let mut shown: Map<String, Value> = result
            .iter()
            .filter(|(key, _)| !key.starts_with("_ansible") && !key.starts_with("_bramble"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let verbose_always = result.contains_key("_ansible_verbose_always");
        let always = matches!(status, Status::Failed | Status::Ignored | Status::Unreachable);
        if !(always || verbose_always || self.verbosity > 0) {
            return None;
        }
        if status == Status::Skipped && self.verbosity == 0 {
            return None;
        }
        if !self.verbose_diff_keys() {
            shown.remove("diff");
        }
        let indent = if verbose_always || self.verbosity > 3 { Some(4) } else { None };
        Some(python_json(&Value::Object(shown), indent, true))
    }

    fn verbose_diff_keys(&self) -> bool {
        self.verbosity > 2
    }

    /// The `PLAY RECAP` block, hosts sorted by name.
    pub fn recap(&self, stats: &BTreeMap<String, Stats>) {
        self.banner("PLAY RECAP");
        for (host, stat) in stats {
            self.print(&format!(
                "{host:<26} : ok={:<4} changed={:<4} unreachable={:<4} failed={:<4} skipped={:<4} rescued={:<4} ignored={:<4}",
                stat.ok, stat.changed, stat.unreachable, stat.failed, stat.skipped, stat.rescued, stat.ignored
            ));
        }
        self.print("");
    }
}

impl Stats {
    pub fn count(&mut self, status: Status, changed: bool) {
        if status == Status::Ignored && changed {
            self.changed += 1;
        }
        match status {
            Status::Ok => self.ok += 1,
            Status::Changed => {
                self.ok += 1;
                self.changed += 1
            }
            Status::Skipped => self.skipped += 1,
            Status::Failed => self.failed += 1,
            Status::Ignored => {
                self.ok += 1;
                self.ignored += 1
            }
            Status::Unreachable => self.unreachable += 1,
        }
    }
}

impl Display {
    /// Prints everything one host reported for a task, as one uninterrupted block.
    pub fn print_report(&self, report: &crate::executor::Report) {
        let mut shown = self.errors_shown.lock().unwrap_or_else(|p| p.into_inner());
        let lines: Vec<&str> = report
            .lines
            .iter()
            .filter(|line| !line.starts_with("[ERROR]: ") || shown.insert(line.to_string()))
            .map(String::as_str)
            .collect();
        drop(shown);
        if !lines.is_empty() {
            self.print(&lines.join("\n"));
        }
    }
}

/// Ansible's `[ERROR]: …` block with `Origin:` and the task's lines.
pub fn error_block(headline: &str, mark: &crate::error::Mark) -> String {
    // ansible-core fits the excerpt in 120 columns: a longer line ends in `...`, and the
    // column marker moves left of the caret when it would not fit on the right.
    const MAX_WIDTH: usize = 120;
    const MARKER: &str = "...";
    let lines: Vec<&str> = mark.source.text.lines().collect();
    let first = mark.line.saturating_sub(2).max(1);
    let width = mark.line.to_string().len();
    let max_line = MAX_WIDTH - width - 1;
    let mut usable = max_line;
    let mut block = format!("[ERROR]: {headline}\nOrigin: {}\n\n", mark.location());
    for number in first..=mark.line {
        let mut text = lines.get(number - 1).copied().unwrap_or("").replace('\t', " ");
        if text.chars().count() > max_line {
            text = text.chars().take(max_line - MARKER.len()).collect::<String>() + MARKER;
            usable = max_line - MARKER.len();
        }
        let gap = if text.is_empty() { "" } else { " " };
        block.push_str(&format!("{number:>width$}{gap}{text}\n"));
    }
    if (1..=usable).contains(&mark.column) {
        let label = format!("column {}", mark.column);
        let index = mark.column - 1;
        let marker = if index + 2 + label.len() > max_line {
            format!("{}{label} ^", " ".repeat(index.saturating_sub(label.len() + 1)))
        } else {
            format!("{}^ {label}", " ".repeat(index))
        };
        block.push_str(&format!("{} {marker}\n", " ".repeat(width)));
    }
    block
}

/// A value as Python's `repr` would show it, for `(item=…)` labels of non-strings.
pub fn python_repr(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'")),
        Value::Array(items) => {
            format!("[{}]", items.iter().map(python_repr).collect::<Vec<_>>().join(", "))
        }
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("'{k}': {}", python_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `-D`: a unified diff of a result's `diff` (before/after with headers).
pub fn render_diff(diff: &Value) -> Option<String> {
    // Editing modules return a list: the content, then the file attributes.
    if let Value::Array(parts) = diff {
        let texts: Vec<String> = parts.iter().filter_map(render_diff).collect();
        return (!texts.is_empty()).then(|| texts.join("\n"));
    }
    let before = diff_text(diff.get("before")?)?;
    let after = diff_text(diff.get("after")?)?;
    // Nothing differs (a file task that changed nothing): ansible-playbook prints nothing.
    if before == after {
        return None;
    }
    // Without a header the side is named alone, as Ansible's callback names it.
    let header = |side: &str| match diff.get(format!("{side}_header")).and_then(Value::as_str) {
        Some(header) => format!("{side}: {header}"),
        None => side.to_string(),
    };
    let text = similar::TextDiff::from_lines(&before, &after)
        .unified_diff()
        .context_radius(3)
        .header(&header("before"), &header("after"))
        .to_string();
    Some(text.trim_end().to_string())
}

/// One side of a diff: text as it is, a mapping (timezone's settings) as sorted JSON.
fn diff_text(side: &Value) -> Option<String> {
    match side {
        Value::String(text) => Some(text.clone()),
        Value::Object(_) => Some(python_json(side, Some(4), true) + "\n"),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// A bramble error as ansible-playbook prints one: `[ERROR]:`, then `Origin:` and the lines.
pub fn format_error(error: &crate::error::Error) -> String {
    match error.mark() {
        Some((mark, message)) => error_block(message, mark).trim_end().to_string(),
        None => format!("[ERROR]: {error}"),
    }
}
