//! YAML loading with Ansible's (PyYAML's YAML 1.1) typing and source positions on every node.

mod resolve;
pub use resolve::{types_as_non_string, unsafe_text};

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::error::{Error, Mark, Result, Source};

/// The scanner's complaint worded as ansible-core words PyYAML's: "YAML parsing failed:
/// While parsing a block collection did not find expected '-' indicator."
fn syntax_message(info: &str) -> String {
    let text = info.trim().replace(", ", " ");
    let mut characters = text.chars();
    let capitalized = match characters.next() {
        Some(first) => first.to_uppercase().chain(characters).collect::<String>(),
        None => String::new(),
    };
    let ending = if capitalized.ends_with('.') { "" } else { "." };
    format!("YAML parsing failed: {capitalized}{ending}")
}

/// A YAML value together with where it was written.
#[derive(Clone, Debug)]
pub struct Node {
    pub kind: Kind,
    pub mark: Mark,
}

#[derive(Clone, Debug)]
pub enum Kind {
    Scalar(Value),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Node {
    /// The plain data, for task arguments and variables.
    pub fn to_value(&self) -> Value {
        match &self.kind {
            Kind::Scalar(value) => value.clone(),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            Kind::Map(entries) => Value::Object(
                entries.iter().map(|(key, node)| (key.clone(), node.to_value())).collect(),
            ),
        }
    }

    pub fn as_map(&self) -> Option<&[(String, Node)]> {
        match &self.kind {
            Kind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            Kind::Seq(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(Value::String(text)) => Some(text),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.kind, Kind::Scalar(Value::Null))
    }

    /// Looks a key up in a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?.iter().find(|(name, _)| name == key).map(|(_, node)| node)
    }

    /// A short name for the node's type, for "expected a list, found a string" messages.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Scalar(Value::Null) => "null",
            Kind::Scalar(Value::Bool(_)) => "boolean",
            Kind::Scalar(Value::Number(_)) => "number",
            Kind::Scalar(Value::String(_)) => "string",
            Kind::Scalar(_) => "scalar",
            Kind::Seq(_) => "list",
            Kind::Map(_) => "mapping",
        }
    }
}

/// Reads and parses a YAML file; an empty file is a null document.
pub fn load_file(path: &Path) -> Result<Node> {
    let text = read_text(path)?;
    load_str(path, text)
}

/// A file's text, decrypted first when it is a vault envelope.
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path)
        .map_err(|source| Error::FileRead { path: path.to_path_buf(), source })?;
    let bytes = if crate::vault::is_encrypted(&bytes) {
        crate::vault::decrypt(&bytes, &path.display().to_string())
            .map_err(|message| Error::VaultFailed { what: path.display().to_string(), message })?
    } else {
        bytes
    };
    String::from_utf8(bytes).map_err(|_| Error::FileRead {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
    })
}

/// Parses YAML text that came from `path` (used for messages only).
pub fn load_str(path: &Path, text: String) -> Result<Node> {
    let source = Arc::new(Source { path: path.to_path_buf(), text });
    let mut builder = Builder {
        source: source.clone(),
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        error: None,
    };
    let mut parser = Parser::new_from_str(&source.text);
    parser.load(&mut builder, false).map_err(|error| Error::YamlSyntax {
        mark: mark_at(&source, error.marker()),
        message: syntax_message(error.info()),
    })?;
    if let Some(error) = builder.error {
        return Err(error);
    }
    Ok(builder.root.unwrap_or(Node {
        kind: Kind::Scalar(Value::Null),
        mark: Mark { source, line: 1, column: 1 },
    }))
}

fn mark_at(source: &Arc<Source>, marker: &Marker) -> Mark {
    Mark { source: source.clone(), line: marker.line(), column: marker.col() + 1 }
}

enum Open {
    Seq {
        anchor: usize,
        mark: Mark,
        items: Vec<Node>,
    },
    Map {
        anchor: usize,
        mark: Mark,
        entries: Vec<(String, Node)>,
        key: Option<Node>,
        first_key: Option<Mark>,
    },
}

struct Builder {
    source: Arc<Source>,
    stack: Vec<Open>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    error: Option<Error>,
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, marker: Marker) {
        if self.error.is_some() {
            return;
        }
        let mark = mark_at(&self.source, &marker);
        let outcome = match event {
            Event::Scalar(text, style, anchor, tag) => self.scalar(text, style, anchor, tag, mark),
            Event::Alias(anchor) => match self.anchors.get(&anchor).cloned() {
                Some(node) => self.push(Node { kind: node.kind, mark }),
                None => Err(Error::invalid(&mark, "alias to an unknown anchor")),
            },
            Event::SequenceStart(anchor, _) => {
                self.stack.push(Open::Seq { anchor, mark, items: Vec::new() });
                Ok(())
            }
            Event::MappingStart(anchor, _) => {
                self.stack.push(Open::Map {
                    anchor,
                    mark,
                    entries: Vec::new(),
                    key: None,
                    first_key: None,
                });
                Ok(())
            }
            Event::SequenceEnd | Event::MappingEnd => self.close(),
            _ => Ok(()),
        };
        if let Err(error) = outcome {
            self.error = Some(error);
        }
    }
}

impl Builder {
    fn scalar(
        &mut self,
        text: String,
        style: TScalarStyle,
        anchor: usize,
        tag: Option<Tag>,
        mark: Mark,
    ) -> Result<()> {
        let value = match tag {
            Some(tag) => resolve::tagged(&tag.handle, &tag.suffix, text, &mark)?,
            None if style == TScalarStyle::Plain => resolve::plain(&text),
            None => Value::String(text),
        };
        let node = Node { kind: Kind::Scalar(value), mark };
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        self.push(node)
    }

    fn close(&mut self) -> Result<()> {
        let (anchor, node) = match self.stack.pop() {
            Some(Open::Seq { anchor, mark, items }) => {
                (anchor, Node { kind: Kind::Seq(items), mark })
            }
            // A mapping is reported where its first key starts, as Ansible's origins do.
            Some(Open::Map { anchor, mark, entries, first_key, .. }) => {
                (anchor, Node { kind: Kind::Map(entries), mark: first_key.unwrap_or(mark) })
            }
            None => return Ok(()),
        };
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        self.push(node)
    }

    fn push(&mut self, node: Node) -> Result<()> {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Open::Seq { items, .. }) => items.push(node),
            Some(Open::Map { entries, key, first_key, .. }) => match key.take() {
                None => {
                    if first_key.is_none() {
                        *first_key = Some(node.mark.clone());
                    }
                    *key = Some(node)
                }
                Some(key_node) => insert_entry(entries, key_node, node)?,
            },
        }
        Ok(())
    }
}

/// Adds one mapping entry: `<<` merges, duplicate keys win last with a warning (as PyYAML).
fn insert_entry(entries: &mut Vec<(String, Node)>, key: Node, value: Node) -> Result<()> {
    let name = match &key.kind {
        Kind::Scalar(Value::String(text)) => text.clone(),
        Kind::Scalar(Value::Null) => String::new(),
        Kind::Scalar(other) => other.to_string(),
        _ => return Err(Error::invalid(&key.mark, "a mapping key must be a scalar")),
    };
    if name == "<<" {
        return merge_into(entries, value);
    }
    if let Some(existing) = entries.iter_mut().find(|(existing, _)| *existing == name) {
        crate::output::err(&format!(
            "[WARNING]: {}: found a duplicate dict key ({name}). Using last defined value only.\n",
            key.mark.location()
        ));
        existing.1 = value;
    } else {
        entries.push((name, value));
    }
    Ok(())
}

fn merge_into(entries: &mut Vec<(String, Node)>, value: Node) -> Result<()> {
    let sources = match value.kind {
        Kind::Map(merged) => vec![merged],
        Kind::Seq(items) => items
            .into_iter()
            .map(|item| match item.kind {
                Kind::Map(merged) => Ok(merged),
                _ => Err(Error::invalid(&item.mark, "a merge key `<<` takes mappings")),
            })
            .collect::<Result<_>>()?,
        _ => return Err(Error::invalid(&value.mark, "a merge key `<<` takes a mapping")),
    };
    for merged in sources {
        for (name, node) in merged {
            if !entries.iter().any(|(existing, _)| *existing == name) {
                entries.push((name, node));
            }
        }
    }
    Ok(())
}
