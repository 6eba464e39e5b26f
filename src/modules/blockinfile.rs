//! `blockinfile`: keep a block of lines between two marker lines, inserted, replaced or
//! removed as Ansible does it, with the text edited on the controller.

use fancy_regex::Regex;
use serde_json::Value;

use super::edit::{self, FileArgs, Found};
use super::{Call, Failure, Outcome, result};

/// What the block is and where a new one goes.
pub struct Block {
    pub present: bool,
    pub marker_begin: String,
    pub marker_end: String,
    pub block: String,
    /// A pattern or `EOF`; `EOF` when neither insert parameter is given.
    pub insertafter: Option<String>,
    /// A pattern or `BOF`.
    pub insertbefore: Option<String>,
    pub append_newline: bool,
    pub prepend_newline: bool,
}

/// An inline `(?m)` at the start makes the insert pattern search the whole text.
fn is_multiline(pattern: &str) -> bool {
    pattern.strip_prefix("(?").and_then(|rest| rest.split_once(')')).is_some_and(|(flags, _)| {
        flags.chars().all(|c| c.is_ascii_alphabetic()) && flags.contains('m')
    })
}

/// The new text, for the file's current text (None when it does not exist).
pub fn apply(original: Option<&str>, plan: &Block) -> Result<String, Failure> {
    let text = original.unwrap_or("");
    let mut lines = edit::split_lines_keep(text);
    let insert_pattern: Option<(Regex, &str)> = match (&plan.insertafter, &plan.insertbefore) {
        (Some(after), _) if after != "EOF" => Some((edit::compile(after, "insertafter")?, after)),
        (_, Some(before)) if before != "BOF" => {
            Some((edit::compile(before, "insertbefore")?, before))
        }
        _ => None,
    };
    let begin = format!("{}\n", plan.marker_begin);
    let end = format!("{}\n", plan.marker_end);
    let mut block_lines = Vec::new();
    if plan.present && !plan.block.is_empty() {
        let mut block = plan.block.clone();
        if !block.ends_with('\n') {
            block.push('\n');
        }
        block_lines.push(begin.clone());
        block_lines.extend(edit::split_lines_keep(&block));
        block_lines.push(end.clone());
    }

    // The existing block (last markers win), or the place for a new one.
    let first = lines.iter().rposition(|line| *line == begin);
    let last = lines.iter().rposition(|line| *line == end);
    let mut at = match (first, last) {
        (Some(first), Some(last)) => {
            let (from, to) = if first < last { (first, last) } else { (last, first) };
            lines.drain(from..=to);
            from
        }
        _ => match insert_pattern {
            Some((pattern, source)) => {
                let found = if is_multiline(source) {
                    pattern.find(text).ok().flatten().map(|m| {
                        let offset = if plan.insertafter.is_some() { m.end() } else { m.start() };
                        text[..offset].matches('\n').count()
                    })
                } else {
                    lines.iter().rposition(|line| edit::search(&pattern, line))
                };
                match found {
                    None => lines.len(),
                    Some(index) if plan.insertafter.is_some() => index + 1,
                    Some(index) => index,
                }
            }
            None if plan.insertbefore.is_some() => 0,
            None => lines.len(),
        },
    };

    if at > 0 && !lines[at - 1].ends_with('\n') {
        lines[at - 1].push('\n');
    }
    if plan.prepend_newline && plan.present && at != 0 && lines[at - 1] != "\n" {
        lines.insert(at, "\n".into());
        at += 1;
    }
    let after_block = at + block_lines.len();
    lines.splice(at..at, block_lines);
    if plan.append_newline
        && plan.present
        && after_block < lines.len()
        && lines[after_block] != "\n"
    {
        lines.insert(after_block, "\n".into());
    }
    Ok(lines.concat())
}

/// Ansible's message for a change from `original` to `new`.
pub fn message(original: Option<&str>, new: &str, removed: bool) -> &'static str {
    match original {
        Some(text) if text == new => "",
        None => "File created",
        Some(_) if removed => "Block removed",
        Some(_) => "Block inserted",
    }
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let path = call.args.required(&["path", "dest", "destfile", "name"])?;
    let present = call.args.choice(&["state"], &["present", "absent"], Some("present"))?.as_deref()
        == Some("present");
    let marker =
        call.args.string(&["marker"]).unwrap_or_else(|| "# {mark} ANSIBLE MANAGED BLOCK".into());
    let marker_begin = call.args.string(&["marker_begin"]).unwrap_or_else(|| "BEGIN".into());
    let marker_end = call.args.string(&["marker_end"]).unwrap_or_else(|| "END".into());
    let insertafter = call.args.string(&["insertafter"]);
    let insertbefore = call.args.string(&["insertbefore"]);
    if insertafter.is_some() && insertbefore.is_some() {
        return Err(super::fail("parameters are mutually exclusive: insertbefore|insertafter"));
    }
    let create = call.args.flag(&["create"], false)?;
    let file_args = FileArgs::read(call)?;
    let plan = Block {
        present,
        marker_begin: marker.replace("{mark}", &marker_begin),
        marker_end: marker.replace("{mark}", &marker_end),
        block: call.args.string(&["block", "content"]).unwrap_or_default(),
        insertafter: if insertafter.is_none() && insertbefore.is_none() {
            Some("EOF".into())
        } else {
            insertafter
        },
        insertbefore,
        append_newline: call.args.flag(&["append_newline"], false)?,
        prepend_newline: call.args.flag(&["prepend_newline"], false)?,
    };

    let found = edit::query(call, &path).await?;
    let original = match &found {
        Found::Directory => {
            return Err(edit::path_failure(256, format!("Path {path} is a directory !")));
        }
        Found::Absent if !create => {
            return Err(edit::path_failure(257, format!("Path {path} does not exist !")));
        }
        Found::Absent if !present => {
            return Ok(result([
                ("changed", Value::Bool(false)),
                ("msg", Value::from(format!("File {path} not present"))),
            ]));
        }
        Found::Absent => None,
        Found::File { text, .. } => Some(text.as_str()),
    };
    let new = apply(original, &plan)?;
    let removed = !plan.present || plan.block.is_empty();
    let message = message(original, &new, removed);

    let new_text = (!message.is_empty()).then_some(new.as_str());
    let committed = edit::commit(call, &path, &found, new_text, message, &file_args).await?;
    let mut outcome =
        result([("changed", Value::Bool(committed.changed)), ("msg", Value::from(committed.msg))]);
    if let Some(backup) = committed.backup {
        outcome.insert("backup_file".into(), Value::from(backup));
    }
    if call.diff {
        outcome.insert("diff".into(), edit::content_diff(&path, original.unwrap_or(""), &new));
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(block: &str) -> Block {
        Block {
            present: true,
            marker_begin: "# BEGIN ANSIBLE MANAGED BLOCK".into(),
            marker_end: "# END ANSIBLE MANAGED BLOCK".into(),
            block: block.into(),
            insertafter: Some("EOF".into()),
            insertbefore: None,
            append_newline: false,
            prepend_newline: false,
        }
    }

    const BLOCK: &str = "# BEGIN ANSIBLE MANAGED BLOCK\nx=1\n# END ANSIBLE MANAGED BLOCK\n";

    #[test]
    fn inserts_at_the_end_then_replaces_in_place() {
        let first = apply(Some("a\nb"), &plan("x=1")).unwrap();
        assert_eq!(first, format!("a\nb\n{BLOCK}"));
        let second = apply(Some(&first), &plan("x=2\ny=3\n")).unwrap();
        assert_eq!(
            second,
            "a\nb\n# BEGIN ANSIBLE MANAGED BLOCK\nx=2\ny=3\n# END ANSIBLE MANAGED BLOCK\n"
        );
        assert_eq!(message(Some(&first), &apply(Some(&first), &plan("x=1")).unwrap(), false), "");
    }

    #[test]
    fn removes_the_block_when_absent_or_empty() {
        let text = format!("a\n{BLOCK}b\n");
        let mut absent = plan("x=1");
        absent.present = false;
        assert_eq!(apply(Some(&text), &absent).unwrap(), "a\nb\n");
        assert_eq!(apply(Some(&text), &plan("")).unwrap(), "a\nb\n");
        assert_eq!(message(Some(&text), "a\nb\n", true), "Block removed");
    }

    #[test]
    fn insert_patterns_use_the_last_matching_line() {
        let mut p = plan("x=1");
        p.insertafter = Some("^k".into());
        assert_eq!(apply(Some("k1\nk2\nz\n"), &p).unwrap(), format!("k1\nk2\n{BLOCK}z\n"));
        p.insertafter = None;
        p.insertbefore = Some("BOF".into());
        assert_eq!(apply(Some("z\n"), &p).unwrap(), format!("{BLOCK}z\n"));
        p.insertbefore = Some("^z".into());
        assert_eq!(apply(Some("a\nz\n"), &p).unwrap(), format!("a\n{BLOCK}z\n"));
        p.insertbefore = Some("(?m)^z$".into());
        assert_eq!(apply(Some("a\nz\n"), &p).unwrap(), format!("a\n{BLOCK}z\n"));
    }

    #[test]
    fn blank_lines_around_the_block_on_request() {
        let mut p = plan("x=1");
        p.insertbefore = Some("^z".into());
        p.insertafter = None;
        p.prepend_newline = true;
        p.append_newline = true;
        assert_eq!(apply(Some("a\nz\n"), &p).unwrap(), format!("a\n\n{BLOCK}\nz\n"));
    }

    #[test]
    fn a_new_file_is_created() {
        assert_eq!(message(None, BLOCK, false), "File created");
        assert_eq!(apply(None, &plan("x=1")).unwrap(), BLOCK);
    }
}
