//! `lineinfile`: make sure one line is in a file (or is not), placed and matched as Ansible
//! places and matches it, with the text edited on the controller.

use fancy_regex::Regex;
use serde_json::Value;

use super::edit::{self, FileArgs, Found};
use super::{Call, Failure, Outcome, fail, result};

/// Where and how `state: present` puts its line.
pub struct Present {
    pub line: String,
    pub regexp: Option<Regex>,
    pub search_string: Option<String>,
    /// `EOF`, `BOF` or a pattern; `EOF` when neither insert parameter is given.
    pub insertafter: Option<String>,
    pub insertbefore: Option<String>,
    pub backrefs: bool,
    pub firstmatch: bool,
}

/// What `state: absent` removes: lines matching the pattern, containing the string, or
/// equal to the line, in that order of preference.
pub enum Remove {
    Regexp(Regex),
    SearchString(String),
    Line(String),
}

/// A line's text without its trailing `\n`, which Python's `$` may match before.
fn body(line: &str) -> &str {
    line.strip_suffix('\n').unwrap_or(line)
}

fn same_line(wanted: &str, line: &str) -> bool {
    wanted == line.trim_end_matches(['\r', '\n'])
}

/// The new text and Ansible's message ("line added", "line replaced" or empty).
pub fn present(text: &str, plan: &Present) -> Result<(String, &'static str), Failure> {
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    let insert_pattern = match (&plan.insertafter, &plan.insertbefore) {
        (Some(after), _) if after != "BOF" && after != "EOF" => {
            Some(edit::compile(after, "insertafter")?)
        }
        (_, Some(before)) if before != "BOF" => Some(edit::compile(before, "insertbefore")?),
        _ => None,
    };

    // Find the line to replace: the last (or first) one the regexp or string matches.
    let mut index: Option<usize> = None;
    let mut insert_at: Option<usize> = None;
    let mut matched = false;
    let mut expansion: Option<String> = None;
    for (number, line) in lines.iter().enumerate() {
        let found = if let Some(regexp) = &plan.regexp {
            match regexp.captures(body(line)).ok().flatten() {
                Some(captures) if plan.backrefs => {
                    expansion = Some(edit::expand(&plan.line, &captures).map_err(fail)?);
                    true
                }
                Some(_) => true,
                None => false,
            }
        } else if let Some(search) = &plan.search_string {
            line.contains(search.as_str())
        } else {
            false
        };
        if found {
            index = Some(number);
            matched = true;
            if plan.firstmatch {
                break;
            }
        }
    }

    // Otherwise look for the line itself, and for where an insert pattern points.
    if !matched {
        for (number, line) in lines.iter().enumerate() {
            if same_line(&plan.line, line) {
                index = Some(number);
            } else if let Some(pattern) = &insert_pattern
                && edit::search(pattern, body(line))
            {
                insert_at = Some(if plan.insertafter.is_some() { number + 1 } else { number });
                if plan.firstmatch {
                    break;
                }
            }
        }
    }

    let with_newline = format!("{}\n", plan.line);
    let after_is = |value: &str| plan.insertafter.as_deref() == Some(value);
    let before_is = |value: &str| plan.insertbefore.as_deref() == Some(value);
    let message = if let Some(index) = index {
        let mut new_line = match (&expansion, plan.backrefs && matched) {
            (Some(expanded), true) => expanded.clone(),
            _ => plan.line.clone(),
        };
        if !new_line.ends_with('\n') {
            new_line.push('\n');
        }
        if lines[index] == new_line {
            ""
        } else {
            lines[index] = new_line;
            "line replaced"
        }
    } else if plan.backrefs {
        // Without a match there is nothing to fill the backreferences with.
        ""
    } else if after_is("BOF") || before_is("BOF") {
        lines.insert(0, with_newline);
        "line added"
    } else if after_is("EOF") || insert_at.is_none() {
        if lines.last().is_some_and(|last| !last.ends_with(['\n', '\r'])) {
            lines.push("\n".into());
        }
        lines.push(with_newline);
        "line added"
    } else if let Some(at) = insert_at.filter(|_| plan.insertafter.is_some()) {
        if at == lines.len() {
            if same_line(&plan.line, &lines[at - 1]) {
                ""
            } else {
                lines.push(with_newline);
                "line added"
            }
        } else if same_line(&plan.line, &lines[at]) {
            ""
        } else {
            lines.insert(at, with_newline);
            "line added"
        }
    } else {
        lines.insert(insert_at.unwrap_or(0), with_newline);
        "line added"
    };
    Ok((lines.concat(), message))
}

/// The new text and how many lines were removed.
pub fn absent(text: &str, remove: &Remove) -> (String, usize) {
    let mut found = 0;
    let kept: String = text
        .split_inclusive('\n')
        .filter(|line| {
            let hit = match remove {
                Remove::Regexp(regexp) => edit::search(regexp, body(line)),
                Remove::SearchString(search) => line.contains(search.as_str()),
                Remove::Line(wanted) => same_line(wanted, line),
            };
            found += usize::from(hit);
            !hit
        })
        .collect();
    (kept, found)
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let path = call.args.required(&["path", "dest", "destfile", "name"])?;
    let state = call.args.choice(&["state"], &["present", "absent"], Some("present"))?;
    let regexp = call.args.string(&["regexp", "regex"]);
    let search_string = call.args.string(&["search_string"]);
    let line = call.args.string(&["line", "value"]);
    let insertafter = call.args.string(&["insertafter"]);
    let insertbefore = call.args.string(&["insertbefore"]);
    let backrefs = call.args.flag(&["backrefs"], false)?;
    let create = call.args.flag(&["create"], false)?;
    let firstmatch = call.args.flag(&["firstmatch"], false)?;
    let file_args = FileArgs::read(call)?;
    for (a, b, both) in [
        ("insertbefore", "insertafter", insertbefore.is_some() && insertafter.is_some()),
        ("regexp", "search_string", regexp.is_some() && search_string.is_some()),
        ("backrefs", "search_string", backrefs && search_string.is_some()),
    ] {
        if both {
            return Err(fail(format!("parameters are mutually exclusive: {a}|{b}")));
        }
    }
    let compiled = regexp.as_deref().map(|r| edit::compile(r, "regexp")).transpose()?;

    let found = edit::query(call, &path).await?;
    if let Found::Directory = found {
        return Err(edit::path_failure(256, format!("Path {path} is a directory !")));
    }
    let before = match &found {
        Found::File { text, .. } => text.clone(),
        _ => String::new(),
    };

    let mut outcome = result([]);
    let (after, message) = if state.as_deref() == Some("absent") {
        if let Found::Absent = found {
            return Ok(result([
                ("changed", Value::Bool(false)),
                ("msg", Value::from("file not present")),
            ]));
        }
        let remove = match (compiled, search_string, line) {
            (Some(regexp), _, _) => Remove::Regexp(regexp),
            (None, Some(search), _) => Remove::SearchString(search),
            (None, None, Some(line)) => Remove::Line(line),
            (None, None, None) => {
                return Err(fail(
                    "one of line, search_string, or regexp is required with state=absent",
                ));
            }
        };
        let (after, count) = absent(&before, &remove);
        outcome.insert("found".into(), Value::from(count));
        let message = if count > 0 { format!("{count} line(s) removed") } else { String::new() };
        (after, message)
    } else {
        if backrefs && compiled.is_none() {
            return Err(fail("regexp is required with backrefs=true"));
        }
        let Some(line) = line else {
            return Err(fail("line is required with state=present"));
        };
        if matches!(found, Found::Absent) && !create {
            return Err(edit::path_failure(257, format!("Destination {path} does not exist !")));
        }
        let insertafter = if insertafter.is_none() && insertbefore.is_none() {
            Some("EOF".into())
        } else {
            insertafter
        };
        let plan = Present {
            line,
            regexp: compiled,
            search_string,
            insertafter,
            insertbefore,
            backrefs,
            firstmatch,
        };
        let (after, message) = present(&before, &plan)?;
        (after, message.to_string())
    };

    let new_text = (!message.is_empty()).then_some(after.as_str());
    let committed = edit::commit(call, &path, &found, new_text, &message, &file_args).await?;
    outcome.insert("changed".into(), Value::Bool(committed.changed));
    outcome.insert("msg".into(), Value::from(committed.msg));
    outcome.insert("backup".into(), Value::from(committed.backup.unwrap_or_default()));
    if call.diff {
        outcome.insert("diff".into(), edit::content_diff(&path, &before, &after));
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(line: &str) -> Present {
        Present {
            line: line.into(),
            regexp: None,
            search_string: None,
            insertafter: Some("EOF".into()),
            insertbefore: None,
            backrefs: false,
            firstmatch: false,
        }
    }

    fn run(text: &str, plan: &Present) -> (String, &'static str) {
        present(text, plan).unwrap()
    }

    #[test]
    fn appends_a_missing_line_once() {
        assert_eq!(run("a\nb", &plan("c")), ("a\nb\nc\n".into(), "line added"));
        assert_eq!(run("a\nc\n", &plan("c")), ("a\nc\n".into(), ""));
        assert_eq!(run("", &plan("c")), ("c\n".into(), "line added"));
    }

    #[test]
    fn regexp_replaces_the_last_match_or_the_first() {
        let mut p = plan("Port 2222");
        p.regexp = Some(edit::compile("^#?Port ", "regexp").unwrap());
        assert_eq!(run("#Port 22\nPort 23\n", &p).0, "#Port 22\nPort 2222\n");
        p.firstmatch = true;
        let (text, message) = run("#Port 22\nPort 23\n", &p);
        assert_eq!((text.as_str(), message), ("Port 2222\nPort 23\n", "line replaced"));
    }

    #[test]
    fn backrefs_without_a_match_change_nothing() {
        let mut p = plan(r"\1yes");
        p.regexp = Some(edit::compile("^(PermitRoot ).*$", "regexp").unwrap());
        p.backrefs = true;
        assert_eq!(run("PermitRoot no\n", &p).0, "PermitRoot yes\n");
        assert_eq!(run("other\n", &p), ("other\n".into(), ""));
    }

    #[test]
    fn inserts_after_and_before_patterns() {
        let mut p = plan("new");
        p.insertafter = Some("^\\[main\\]".into());
        assert_eq!(run("[main]\nx\n[main]\n", &p).0, "[main]\nx\n[main]\nnew\n");
        p.firstmatch = true;
        assert_eq!(run("[main]\nx\n[main]\n", &p).0, "[main]\nnew\nx\n[main]\n");
        p.insertafter = None;
        p.insertbefore = Some("^x".into());
        assert_eq!(run("a\nx\n", &p).0, "a\nnew\nx\n");
        p.insertbefore = Some("BOF".into());
        assert_eq!(run("a\n", &p).0, "new\na\n");
        p.insertbefore = Some("^nomatch".into());
        assert_eq!(run("a\n", &p).0, "a\nnew\n", "an unmatched pattern appends");
    }

    #[test]
    fn a_last_line_without_newline_is_replaced() {
        assert_eq!(run("a\nc", &plan("c")), ("a\nc\n".into(), "line replaced"));
    }

    #[test]
    fn absent_counts_removed_lines() {
        let regexp = Remove::Regexp(edit::compile("^#", "regexp").unwrap());
        assert_eq!(absent("#a\nb\n#c", &regexp), ("b\n".into(), 2));
        assert_eq!(absent("a\r\nb\n", &Remove::Line("a".into())), ("b\n".into(), 1));
        assert_eq!(absent("xay\n", &Remove::SearchString("a".into())), (String::new(), 1));
    }
}
