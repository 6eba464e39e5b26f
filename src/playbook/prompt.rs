//! `vars_prompt`: play variables asked for at the terminal when the play starts, as
//! ansible-playbook asks them. A name given with `-e` is not asked; without a terminal
//! nothing is asked and each variable takes its default (or none), with one warning.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::yaml::Node;

/// One `vars_prompt` entry.
#[derive(Clone, Debug)]
pub struct VarPrompt {
    pub name: String,
    pub prompt: Option<String>,
    pub default: Option<Value>,
    /// Typed without echo (the default, as in ansible-core).
    pub private: bool,
    /// Asked twice, until both answers agree.
    pub confirm: bool,
    /// The answer is never templated.
    pub unsafe_text: bool,
}

const KEYS: &[&str] =
    &["name", "prompt", "default", "private", "confirm", "unsafe", "encrypt", "salt", "salt_size"];

impl VarPrompt {
    pub fn list(node: &Node) -> Result<Vec<VarPrompt>> {
        if node.is_null() {
            return Ok(Vec::new());
        }
        let Some(entries) = node.as_seq() else {
            return Err(Error::invalid(
                &node.mark,
                format!("vars_prompt expects a list of mappings, found a {}", node.type_name()),
            ));
        };
        entries.iter().map(VarPrompt::load).collect()
    }

    fn load(node: &Node) -> Result<VarPrompt> {
        let Some(fields) = node.as_map() else {
            return Err(Error::invalid(
                &node.mark,
                format!("a vars_prompt entry must be a mapping, found a {}", node.type_name()),
            ));
        };
        for (key, value) in fields {
            if !KEYS.contains(&key.as_str()) {
                return Err(super::unknown_keyword(
                    &super::key_mark(&value.mark, key),
                    key,
                    "vars_prompt entry",
                    KEYS,
                ));
            }
            if matches!(key.as_str(), "encrypt" | "salt" | "salt_size") {
                return Err(Error::NotSupported {
                    what: format!(
                        "{}: vars_prompt `{key}` (hashing the answer, as the password_hash filter)",
                        value.mark.location()
                    ),
                });
            }
        }
        let Some(name) = node.get("name").and_then(Node::as_str).filter(|n| !n.is_empty()) else {
            return Err(Error::invalid(&node.mark, "a vars_prompt entry needs a `name:`"));
        };
        let flag = |key: &str, default: bool| -> Result<bool> {
            match node.get(key).map(|value| (value, value.to_value())) {
                None => Ok(default),
                Some((_, Value::Bool(flag))) => Ok(flag),
                Some((value, _)) => {
                    Err(Error::invalid(&value.mark, format!("{key} expects true or false")))
                }
            }
        };
        Ok(VarPrompt {
            name: name.to_string(),
            prompt: node.get("prompt").map(|p| super::display_string(&p.to_value())),
            // Answers are text, and so is a default (2 becomes "2"), as in ansible-core.
            default: node
                .get("default")
                .map(Node::to_value)
                .filter(|value| !value.is_null())
                .map(|value| Value::String(super::display_string(&value))),
            private: flag("private", true)?,
            confirm: flag("confirm", false)?,
            unsafe_text: flag("unsafe", false)?,
        })
    }

    /// What ansible-core shows: `prompt [default]: `, or `input for name: ` without a prompt.
    pub fn question(&self) -> String {
        match (&self.prompt, &self.default) {
            (Some(prompt), Some(default)) => {
                format!("{prompt} [{}]: ", super::display_string(default))
            }
            (Some(prompt), None) => format!("{prompt}: "),
            (None, _) => format!("input for {}: ", self.name),
        }
    }

    /// The variable's value from a typed answer: the default when nothing was typed, the
    /// text kept from templating when `unsafe`.
    pub fn answer(&self, typed: String) -> Value {
        if typed.is_empty()
            && let Some(default) = &self.default
        {
            return default.clone();
        }
        if self.unsafe_text {
            return Value::String(crate::yaml::unsafe_text(&typed));
        }
        Value::String(typed)
    }
}

/// Where the answers come from: the terminal, or nowhere (defaults only).
pub trait Asker {
    /// `None` when there is no terminal to ask on.
    fn ask(&mut self, question: &str, echo: bool) -> Option<std::io::Result<String>>;
    /// Said between two answers that differ, before asking again.
    fn mismatch(&mut self);
}

/// The values of a play's prompts: skipped for names in `extra_vars`; `Ok(false)` in the
/// second place when there was no terminal (the caller warns).
pub fn answers(
    prompts: &[VarPrompt],
    extra_vars: &Map<String, Value>,
    asker: &mut dyn Asker,
) -> Result<(Map<String, Value>, bool)> {
    let mut values = Map::new();
    let mut asked_all = true;
    for prompt in prompts.iter().filter(|p| !extra_vars.contains_key(&p.name)) {
        let question = prompt.question();
        let typed = loop {
            let Some(first) = asker.ask(&question, !prompt.private) else {
                asked_all = false;
                break None;
            };
            let first = first.map_err(|error| reading(prompt, error))?;
            if !prompt.confirm {
                break Some(first);
            }
            match asker.ask(&format!("confirm {question}"), !prompt.private) {
                Some(second) if second.as_ref().is_ok_and(|s| *s == first) => break Some(first),
                Some(Err(error)) => return Err(reading(prompt, error)),
                Some(Ok(_)) => asker.mismatch(),
                None => break Some(first),
            }
        };
        let value = match typed {
            Some(typed) => prompt.answer(typed),
            // Without a terminal and a default, ansible-core keeps the text `None`: a string
            // (`| type_debug` is str, `is none` false), printed as None among other text.
            None => prompt.default.clone().unwrap_or_else(|| Value::from("None")),
        };
        values.insert(prompt.name.clone(), value);
    }
    Ok((values, asked_all))
}

fn reading(prompt: &VarPrompt, error: std::io::Error) -> Error {
    Error::argument(format!("vars_prompt {}: could not read the answer: {error}", prompt.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Answers from a list, as if typed; records what was asked.
    struct Typed {
        answers: Vec<&'static str>,
        asked: Vec<(String, bool)>,
        mismatches: usize,
    }

    impl Asker for Typed {
        fn ask(&mut self, question: &str, echo: bool) -> Option<std::io::Result<String>> {
            self.asked.push((question.to_string(), echo));
            (!self.answers.is_empty()).then(|| Ok(self.answers.remove(0).to_string()))
        }
        fn mismatch(&mut self) {
            self.mismatches += 1;
        }
    }

    fn prompts(yaml: &str) -> Vec<VarPrompt> {
        let node = crate::yaml::load_str(std::path::Path::new("site.yml"), yaml.to_string())
            .expect("yaml");
        VarPrompt::list(&node).expect("prompts")
    }

    #[test]
    fn typed_answers_defaults_confirmation_and_extra_vars() {
        let list = prompts(
            "- {name: user, prompt: Who, default: pi, private: false}\n\
             - {name: pass, prompt: Password, confirm: true}\n\
             - {name: raw, unsafe: true, private: false}\n\
             - {name: given}\n",
        );
        let mut typed = Typed {
            answers: vec!["", "a", "b", "s3", "s3", "{{ x }}"],
            asked: vec![],
            mismatches: 0,
        };
        let extra = Map::from_iter([("given".to_string(), json!("from -e"))]);
        let (values, asked_all) = answers(&list, &extra, &mut typed).expect("answers");
        assert!(asked_all);
        assert_eq!(
            Value::Object(values),
            json!({"user": "pi", "pass": "s3", "raw": "{% raw %}{{ x }}{% endraw %}"})
        );
        let questions: Vec<(&str, bool)> =
            typed.asked.iter().map(|(q, echo)| (q.as_str(), *echo)).collect();
        assert_eq!(
            questions,
            [
                ("Who [pi]: ", true),
                ("Password: ", false),
                ("confirm Password: ", false),
                ("Password: ", false),
                ("confirm Password: ", false),
                ("input for raw: ", true),
            ]
        );
        assert_eq!(typed.mismatches, 1);
    }

    #[test]
    fn without_a_terminal_defaults_or_none() {
        let list = prompts("- {name: a, prompt: A, default: 3}\n- {name: b, prompt: B}\n");
        let mut none = Typed { answers: vec![], asked: vec![], mismatches: 0 };
        let (values, asked_all) = answers(&list, &Map::new(), &mut none).expect("answers");
        assert!(!asked_all);
        assert_eq!(Value::Object(values), json!({"a": "3", "b": "None"}));
    }

    #[test]
    fn bad_entries_name_their_line() {
        let node =
            |yaml: &str| crate::yaml::load_str(std::path::Path::new("site.yml"), yaml.into());
        let error = VarPrompt::list(&node("- {prompt: x}\n").unwrap()).unwrap_err().to_string();
        assert!(error.contains("site.yml:1") && error.contains("needs a `name:`"), "{error}");
        let error = VarPrompt::list(&node("- name: a\n  privat: false\n").unwrap()).unwrap_err();
        assert!(error.to_string().contains("did you mean `private`"), "{error}");
        let error = VarPrompt::list(&node("- name: a\n  encrypt: sha512_crypt\n").unwrap());
        assert!(error.unwrap_err().to_string().contains("not supported yet"));
    }
}
