//! `replace`: substitute every match of a multi-line pattern in a file, optionally only in
//! the section between `after` and `before`, with the text edited on the controller.

use serde_json::Value;

use super::edit::{self, FileArgs, Found};
use super::{Call, Failure, Outcome, fail, result};

/// What to substitute and where.
pub struct Replace {
    pub regexp: String,
    pub replace: String,
    pub after: Option<String>,
    pub before: Option<String>,
}

/// The edit: `Ok(None)` when `after`/`before` did not match (with Ansible's message),
/// otherwise the new text and the number of substitutions.
pub fn apply(text: &str, plan: &Replace) -> Result<Result<(String, usize), String>, Failure> {
    let section_pattern = match (&plan.after, &plan.before) {
        (Some(after), Some(before)) => Some(format!("{after}(?P<subsection>.*?){before}")),
        (Some(after), None) => Some(format!("{after}(?P<subsection>.*)")),
        (None, Some(before)) => Some(format!("(?P<subsection>.*){before}")),
        (None, None) => None,
    };
    let (start, end) = match &section_pattern {
        Some(pattern) => {
            let section = edit::compile(&format!("(?s){pattern}"), "after/before")?;
            let found = section.captures(text).ok().flatten().and_then(|c| c.name("subsection"));
            match found {
                Some(m) => (m.start(), m.end()),
                None => {
                    return Ok(Err(format!(
                        "Pattern for before/after params did not match the given file: {pattern}"
                    )));
                }
            }
        }
        None => (0, text.len()),
    };

    let regexp = edit::compile(&format!("(?m){}", plan.regexp), "regexp")?;
    let section = &text[start..end];
    let mut replaced = String::new();
    let mut count = 0;
    let mut last = 0;
    for captures in regexp.captures_iter(section) {
        let captures = captures
            .map_err(|error| fail(format!("Unable to process replace due to error: {error}")))?;
        let Some(whole) = captures.get(0) else { continue };
        replaced.push_str(&section[last..whole.start()]);
        let expanded = edit::expand(&plan.replace, &captures)
            .map_err(|error| fail(format!("Unable to process replace due to error: {error}")))?;
        replaced.push_str(&expanded);
        last = whole.end();
        count += 1;
    }
    replaced.push_str(&section[last..]);
    Ok(Ok((format!("{}{replaced}{}", &text[..start], &text[end..]), count)))
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let path = call.args.required(&["path", "dest", "destfile", "name"])?;
    let plan = Replace {
        regexp: call.args.required(&["regexp"])?,
        replace: call.args.string(&["replace"]).unwrap_or_default(),
        after: call.args.string(&["after"]).filter(|s| !s.is_empty()),
        before: call.args.string(&["before"]).filter(|s| !s.is_empty()),
    };
    if let Some(encoding) = call.args.string(&["encoding"])
        && !encoding.eq_ignore_ascii_case("utf-8")
        && !encoding.eq_ignore_ascii_case("utf8")
    {
        return Err(fail(format!("not supported yet: encoding={encoding} (files are UTF-8)")));
    }
    let file_args = FileArgs::read(call)?;

    let found = edit::query(call, &path).await?;
    let text = match &found {
        Found::Directory => {
            return Err(edit::path_failure(256, format!("Path {path} is a directory !")));
        }
        Found::Absent => {
            return Err(edit::path_failure(257, format!("Path {path} does not exist !")));
        }
        Found::File { text, .. } => text.clone(),
    };
    let (new, count) = match apply(&text, &plan)? {
        Ok(edited) => edited,
        Err(message) => {
            return Ok(result([
                ("rc", Value::from(0)),
                ("msg", Value::from(message)),
                ("changed", Value::Bool(false)),
            ]));
        }
    };
    let changed = count > 0 && new != text;
    let message = if changed { format!("{count} replacements made") } else { String::new() };

    let committed =
        edit::commit(call, &path, &found, changed.then_some(new.as_str()), &message, &file_args)
            .await?;
    let mut outcome = result([("rc", Value::from(0))]);
    if changed && call.diff {
        outcome.insert(
            "diff".into(),
            serde_json::json!({
                "before_header": path, "before": text, "after_header": path, "after": new,
            }),
        );
    }
    if let Some(backup) = committed.backup {
        outcome.insert("backup_file".into(), Value::from(backup));
    }
    outcome.insert("msg".into(), Value::from(committed.msg));
    outcome.insert("changed".into(), Value::Bool(committed.changed));
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(regexp: &str, replace: &str) -> Replace {
        Replace { regexp: regexp.into(), replace: replace.into(), after: None, before: None }
    }

    #[test]
    fn substitutes_every_match_with_groups() {
        let (text, count) = apply("a=1\nb=2\n", &plan(r"^(\w)=(\d)$", r"\2=\1")).unwrap().unwrap();
        assert_eq!((text.as_str(), count), ("1=a\n2=b\n", 2));
    }

    #[test]
    fn only_between_after_and_before() {
        let mut p = plan("x", "y");
        p.after = Some("<a>".into());
        p.before = Some("</a>".into());
        let (text, count) = apply("x<a>x\nx</a>x", &p).unwrap().unwrap();
        assert_eq!((text.as_str(), count), ("x<a>y\ny</a>x", 2));
        p.after = Some("nomatch".into());
        let message = apply("x", &p).unwrap().unwrap_err();
        assert!(message.starts_with("Pattern for before/after params did not match"));
    }

    #[test]
    fn no_match_is_no_change() {
        assert_eq!(apply("abc", &plan("z", "y")).unwrap().unwrap(), ("abc".into(), 0));
    }
}
