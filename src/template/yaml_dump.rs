//! `to_yaml` and `to_nice_yaml`: YAML written the way Ansible's filters write it, that is
//! PyYAML's safe dumper driving libyaml's emitter. Playbooks write configuration files with
//! these filters (compose files, Prometheus and Alloy settings), so a rerun must produce the
//! same bytes as ansible-playbook did or every host reports a spurious change. Hence the same
//! choice of quoting for each string, the same folding of long scalars at the line width, and
//! the same indentation quirks (`-   item` in a sequence under `indent=4`).
//!
//! The emitter keeps PyYAML's notion of where the cursor is (column, whether the last thing
//! written was whitespace or indentation): every layout decision reads those.

use serde_json::Value;

/// The dumper's keyword arguments that Ansible's filters pass on.
#[derive(Debug, Clone)]
pub struct Options {
    pub indent: usize,
    pub width: usize,
    pub sort_keys: bool,
    /// `default_flow_style`: `None` writes collections holding only scalars inline.
    pub flow: Option<bool>,
    pub explicit_start: bool,
    pub explicit_end: bool,
}

impl Options {
    /// `to_yaml`'s defaults.
    pub fn terse() -> Options {
        Options {
            indent: 2,
            width: 80,
            sort_keys: true,
            flow: None,
            explicit_start: false,
            explicit_end: false,
        }
    }

    /// `to_nice_yaml`'s defaults.
    pub fn nice() -> Options {
        Options { indent: 4, flow: Some(false), ..Options::terse() }
    }
}

pub fn dump(value: &Value, options: &Options) -> String {
    let node = represent(value, options);
    let mut emitter = Emitter::new(options);
    if options.explicit_start {
        emitter.write_indicator("---", true, false, false);
    }
    emitter.node(&node, Context::default());
    emitter.write_indent();
    if options.explicit_end {
        emitter.write_indicator("...", true, false, false);
        emitter.write_indent();
    }
    emitter.out
}

enum Node {
    /// `plain` is false when the text, unquoted, would read back as something other than a
    /// string (`yes`, `0644`, `~`, a date), so it must be quoted.
    Scalar {
        text: String,
        plain: bool,
    },
    Sequence {
        items: Vec<Node>,
        flow: bool,
    },
    Mapping {
        pairs: Vec<(Node, Node)>,
        flow: bool,
    },
}

impl Node {
    fn is_scalar(&self) -> bool {
        matches!(self, Node::Scalar { .. })
    }

    fn is_empty_collection(&self) -> bool {
        match self {
            Node::Sequence { items, .. } => items.is_empty(),
            Node::Mapping { pairs, .. } => pairs.is_empty(),
            Node::Scalar { .. } => false,
        }
    }
}

fn represent(value: &Value, options: &Options) -> Node {
    let scalar = |text: String| Node::Scalar { text, plain: true };
    match value {
        Value::Null => scalar("null".into()),
        Value::Bool(flag) => scalar(if *flag { "true" } else { "false" }.into()),
        Value::Number(number) => scalar(number_text(number)),
        Value::String(text) => {
            Node::Scalar { text: text.clone(), plain: reads_back_as_string(text) }
        }
        Value::Array(items) => {
            let items: Vec<Node> = items.iter().map(|item| represent(item, options)).collect();
            let flow = options.flow.unwrap_or_else(|| items.iter().all(Node::is_scalar));
            Node::Sequence { items, flow }
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            if options.sort_keys {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            let pairs: Vec<(Node, Node)> = entries
                .into_iter()
                .map(|(key, value)| {
                    (represent(&Value::String(key.clone()), options), represent(value, options))
                })
                .collect();
            let flow = options
                .flow
                .unwrap_or_else(|| pairs.iter().all(|(k, v)| k.is_scalar() && v.is_scalar()));
            Node::Mapping { pairs, flow }
        }
    }
}

/// PyYAML writes floats as Python's `repr`, lower-cased, with `.0` added to a bare exponent
/// form (`1e+16` → `1.0e+16`) so that YAML 1.1 reads it back as a float.
fn number_text(number: &serde_json::Number) -> String {
    match number.as_f64() {
        Some(float) if number.is_f64() => {
            let repr = crate::output::python_float_repr(float);
            if !repr.contains('.') && repr.contains('e') {
                repr.replacen('e', ".0e", 1)
            } else {
                repr
            }
        }
        _ => number.to_string(),
    }
}

/// Whether YAML 1.1 (PyYAML's resolver) types this text, written plain, as a string.
fn reads_back_as_string(text: &str) -> bool {
    use std::sync::LazyLock;
    static TIMESTAMP: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(
            r"^(?:[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)$",
        )
        .expect("valid regex")
    });
    !(matches!(text, "<<" | "=")
        || TIMESTAMP.is_match(text)
        || crate::yaml::types_as_non_string(text))
}

/// What the emitter needs to know about a scalar to pick its style.
struct Analysis {
    empty: bool,
    multiline: bool,
    flow_plain: bool,
    block_plain: bool,
    single_quoted: bool,
}

fn is_break(ch: char) -> bool {
    matches!(ch, '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_blank_or_end(ch: Option<char>) -> bool {
    matches!(ch, None | Some('\0' | ' ' | '\t' | '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}'))
}

/// Characters YAML may hold unescaped (Ansible always allows Unicode); anything else forces
/// double quotes.
fn is_printable(ch: char) -> bool {
    match ch {
        '\n' | '\x20'..='\x7e' => true,
        '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..='\u{10ffff}' => {
            ch != '\u{feff}'
        }
        _ => false,
    }
}

fn analyze(text: &str) -> Analysis {
    if text.is_empty() {
        return Analysis {
            empty: true,
            multiline: false,
            flow_plain: false,
            block_plain: true,
            single_quoted: true,
        };
    }
    let chars: Vec<char> = text.chars().collect();
    let mut flow_indicators = text.starts_with("---") || text.starts_with("...");
    let mut block_indicators = flow_indicators;
    let (mut line_breaks, mut special) = (false, false);
    let (mut leading_space, mut leading_break) = (false, false);
    let (mut trailing_space, mut trailing_break) = (false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut previous_space, mut previous_break) = (false, false);
    let mut preceded_by_whitespace = true;
    for (index, &ch) in chars.iter().enumerate() {
        let followed_by_whitespace = is_blank_or_end(chars.get(index + 1).copied());
        if index == 0 {
            if "#,[]{}&*!|>'\"%@`".contains(ch) {
                flow_indicators = true;
                block_indicators = true;
            }
            if ch == '?' || ch == ':' {
                flow_indicators = true;
                block_indicators |= followed_by_whitespace;
            }
            if ch == '-' && followed_by_whitespace {
                flow_indicators = true;
                block_indicators = true;
            }
        } else {
            if ",?[]{}".contains(ch) {
                flow_indicators = true;
            }
            if ch == ':' {
                flow_indicators = true;
                block_indicators |= followed_by_whitespace;
            }
            if ch == '#' && preceded_by_whitespace {
                flow_indicators = true;
                block_indicators = true;
            }
        }
        line_breaks |= is_break(ch);
        special |= !is_printable(ch);
        let last = index == chars.len() - 1;
        if ch == ' ' {
            leading_space |= index == 0;
            trailing_space |= last;
            break_space |= previous_break;
            (previous_space, previous_break) = (true, false);
        } else if is_break(ch) {
            leading_break |= index == 0;
            trailing_break |= last;
            space_break |= previous_space;
            (previous_space, previous_break) = (false, true);
        } else {
            (previous_space, previous_break) = (false, false);
        }
        preceded_by_whitespace = is_blank_or_end(Some(ch));
    }
    let edges = leading_space || leading_break || trailing_space || trailing_break;
    let unquotable = space_break || special;
    let plain = !(edges || break_space || unquotable || line_breaks);
    Analysis {
        empty: false,
        multiline: line_breaks,
        flow_plain: plain && !flow_indicators,
        block_plain: plain && !block_indicators,
        single_quoted: !(break_space || unquotable),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum ScalarStyle {
    Plain,
    Single,
    Double,
}

/// Where a node sits, as the emitter's layout rules ask.
#[derive(Clone, Copy, Default)]
struct Context {
    mapping: bool,
    simple_key: bool,
}

struct Emitter {
    out: String,
    best_indent: usize,
    best_width: usize,
    indent: Option<usize>,
    indents: Vec<Option<usize>>,
    flow_level: usize,
    column: usize,
    /// The last character written was whitespace.
    whitespace: bool,
    /// The line so far holds only indentation and indicators (`- `, `? `, `: `).
    indention: bool,
}

impl Emitter {
    fn new(options: &Options) -> Emitter {
        let best_indent = if (2..10).contains(&options.indent) { options.indent } else { 2 };
        let best_width = if options.width > best_indent * 2 { options.width } else { 80 };
        Emitter {
            out: String::new(),
            best_indent,
            best_width,
            indent: None,
            indents: Vec::new(),
            flow_level: 0,
            column: 0,
            whitespace: true,
            indention: true,
        }
    }

    fn node(&mut self, node: &Node, context: Context) {
        match node {
            Node::Scalar { text, plain } => {
                self.increase_indent(true, false);
                self.scalar(text, *plain, context);
                self.indent = self.indents.pop().flatten();
            }
            Node::Sequence { items, flow } => {
                if self.flow_level > 0 || *flow || items.is_empty() {
                    self.flow_sequence(items);
                } else {
                    self.block_sequence(items, context);
                }
            }
            Node::Mapping { pairs, flow } => {
                if self.flow_level > 0 || *flow || pairs.is_empty() {
                    self.flow_mapping(pairs);
                } else {
                    self.block_mapping(pairs);
                }
            }
        }
    }

    fn flow_sequence(&mut self, items: &[Node]) {
        self.write_indicator("[", true, true, false);
        self.flow_level += 1;
        self.increase_indent(true, false);
        for (index, item) in items.iter().enumerate() {
            if index > 0 {
                self.write_indicator(",", false, false, false);
            }
            if self.column > self.best_width {
                self.write_indent();
            }
            self.node(item, Context::default());
        }
        self.indent = self.indents.pop().flatten();
        self.flow_level -= 1;
        self.write_indicator("]", false, false, false);
    }

    fn flow_mapping(&mut self, pairs: &[(Node, Node)]) {
        self.write_indicator("{", true, true, false);
        self.flow_level += 1;
        self.increase_indent(true, false);
        let in_mapping = Context { mapping: true, ..Context::default() };
        for (index, (key, value)) in pairs.iter().enumerate() {
            if index > 0 {
                self.write_indicator(",", false, false, false);
            }
            if self.column > self.best_width {
                self.write_indent();
            }
            if self.is_simple_key(key) {
                self.node(key, Context { simple_key: true, ..in_mapping });
                self.write_indicator(":", false, false, false);
            } else {
                self.write_indicator("?", true, false, false);
                self.node(key, in_mapping);
                if self.column > self.best_width {
                    self.write_indent();
                }
                self.write_indicator(":", true, false, false);
            }
            self.node(value, in_mapping);
        }
        self.indent = self.indents.pop().flatten();
        self.flow_level -= 1;
        self.write_indicator("}", false, false, false);
    }

    fn block_sequence(&mut self, items: &[Node], context: Context) {
        // A sequence that is a mapping's value starts at the key's column (`key:\n- a`).
        let indentless = context.mapping && !self.indention;
        self.increase_indent(false, indentless);
        for item in items {
            self.write_indent();
            self.write_indicator("-", true, false, true);
            self.node(item, Context::default());
        }
        self.indent = self.indents.pop().flatten();
    }

    fn block_mapping(&mut self, pairs: &[(Node, Node)]) {
        self.increase_indent(false, false);
        let in_mapping = Context { mapping: true, ..Context::default() };
        for (key, value) in pairs {
            self.write_indent();
            if self.is_simple_key(key) {
                self.node(key, Context { simple_key: true, ..in_mapping });
                self.write_indicator(":", false, false, false);
            } else {
                self.write_indicator("?", true, false, true);
                self.node(key, in_mapping);
                self.write_indent();
                self.write_indicator(":", true, false, true);
            }
            self.node(value, in_mapping);
        }
        self.indent = self.indents.pop().flatten();
    }

    /// A key written as `key:` rather than after `? `: on one line and at most 128 bytes
    /// (libyaml's limit; PyYAML's own emitter differs on empty keys).
    fn is_simple_key(&self, key: &Node) -> bool {
        match key {
            Node::Scalar { text, .. } => text.len() <= 128 && !analyze(text).multiline,
            collection => collection.is_empty_collection(),
        }
    }

    fn increase_indent(&mut self, flow: bool, indentless: bool) {
        self.indents.push(self.indent);
        self.indent = match self.indent {
            None if flow => Some(self.best_indent),
            None => Some(0),
            Some(indent) if !indentless => Some(indent + self.best_indent),
            same => same,
        };
    }

    fn scalar(&mut self, text: &str, plain: bool, context: Context) {
        let analysis = analyze(text);
        let plain_here =
            if self.flow_level > 0 { analysis.flow_plain } else { analysis.block_plain };
        let key_unfit = context.simple_key && (analysis.empty || analysis.multiline);
        let style = if plain && !key_unfit && plain_here {
            ScalarStyle::Plain
        } else if analysis.single_quoted && !(context.simple_key && analysis.multiline) {
            ScalarStyle::Single
        } else {
            ScalarStyle::Double
        };
        let split = !context.simple_key;
        match style {
            ScalarStyle::Plain => self.write_plain(text, split),
            ScalarStyle::Single => self.write_single_quoted(text, split),
            ScalarStyle::Double => self.write_double_quoted(text, split),
        }
    }

    fn write(&mut self, text: &str) {
        self.column += text.chars().count();
        self.out.push_str(text);
    }

    fn write_indicator(&mut self, indicator: &str, need_space: bool, space: bool, indention: bool) {
        if !self.whitespace && need_space {
            self.write(" ");
        }
        self.write(indicator);
        self.whitespace = space;
        self.indention = self.indention && indention;
    }

    fn write_indent(&mut self) {
        let indent = self.indent.unwrap_or(0);
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.write_line_break('\n');
        }
        if self.column < indent {
            self.whitespace = true;
            let pad = " ".repeat(indent - self.column);
            self.write(&pad);
        }
    }

    fn write_line_break(&mut self, ch: char) {
        self.out.push(ch);
        self.whitespace = true;
        self.indention = true;
        self.column = 0;
    }

    /// Line breaks inside a quoted or plain scalar: one more `\n` before a leading `\n`
    /// (a single break would read back as a space), then the indentation.
    fn write_breaks(&mut self, breaks: &[char]) {
        if breaks.first() == Some(&'\n') {
            self.write_line_break('\n');
        }
        for &ch in breaks {
            self.write_line_break(ch);
        }
        self.write_indent();
    }

    fn write_plain(&mut self, text: &str, split: bool) {
        if text.is_empty() {
            return;
        }
        if !self.whitespace {
            self.write(" ");
        }
        self.whitespace = false;
        self.indention = false;
        let chars: Vec<char> = text.chars().collect();
        let (mut spaces, mut breaks) = (false, false);
        let mut start = 0;
        for end in 0..=chars.len() {
            let ch = chars.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    if start + 1 == end && self.column > self.best_width && split {
                        self.write_indent();
                        self.whitespace = false;
                        self.indention = false;
                    } else {
                        self.write(&chars[start..end].iter().collect::<String>());
                    }
                    start = end;
                }
            } else if breaks {
                if !ch.is_some_and(is_break) {
                    self.write_breaks(&chars[start..end]);
                    self.whitespace = false;
                    self.indention = false;
                    start = end;
                }
            } else if ch.is_none_or(|ch| ch == ' ' || is_break(ch)) {
                self.write(&chars[start..end].iter().collect::<String>());
                start = end;
            }
            if let Some(ch) = ch {
                spaces = ch == ' ';
                breaks = is_break(ch);
            }
        }
    }

    fn write_single_quoted(&mut self, text: &str, split: bool) {
        self.write_indicator("'", true, false, false);
        let chars: Vec<char> = text.chars().collect();
        let (mut spaces, mut breaks) = (false, false);
        let mut start = 0;
        for end in 0..=chars.len() {
            let ch = chars.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    let fold = start + 1 == end
                        && self.column > self.best_width
                        && split
                        && start != 0
                        && end != chars.len();
                    if fold {
                        self.write_indent();
                    } else {
                        self.write(&chars[start..end].iter().collect::<String>());
                    }
                    start = end;
                }
            } else if breaks {
                if !ch.is_some_and(is_break) {
                    self.write_breaks(&chars[start..end]);
                    start = end;
                }
            } else if ch.is_none_or(|ch| ch == ' ' || ch == '\'' || is_break(ch)) && start < end {
                self.write(&chars[start..end].iter().collect::<String>());
                start = end;
            }
            if ch == Some('\'') {
                self.write("''");
                start = end + 1;
            }
            if let Some(ch) = ch {
                spaces = ch == ' ';
                breaks = is_break(ch);
            }
        }
        self.write_indicator("'", false, false, false);
    }

    /// libyaml's rule (not PyYAML's): fold at a single space once past the width, writing
    /// `\` first when the space is followed by another, since a fold eats one space.
    fn write_double_quoted(&mut self, text: &str, split: bool) {
        self.write_indicator("\"", true, false, false);
        let chars: Vec<char> = text.chars().collect();
        let mut after_space = false;
        for (index, &ch) in chars.iter().enumerate() {
            let escaped =
                !is_printable(ch) || is_break(ch) || matches!(ch, '\u{feff}' | '"' | '\\');
            if escaped {
                self.write(&escape(ch));
                after_space = false;
            } else if ch == ' ' {
                let fold = split
                    && !after_space
                    && self.column > self.best_width
                    && index != 0
                    && index + 1 != chars.len();
                if fold {
                    self.write_indent();
                    if chars.get(index + 1) == Some(&' ') {
                        self.write("\\");
                    }
                } else {
                    self.write(" ");
                }
                after_space = true;
            } else {
                self.write(ch.encode_utf8(&mut [0; 4]));
                after_space = false;
            }
        }
        self.write_indicator("\"", false, false, false);
    }
}

fn escape(ch: char) -> String {
    let short = match ch {
        '\0' => '0',
        '\x07' => 'a',
        '\x08' => 'b',
        '\t' => 't',
        '\n' => 'n',
        '\x0b' => 'v',
        '\x0c' => 'f',
        '\r' => 'r',
        '\x1b' => 'e',
        '"' => '"',
        '\\' => '\\',
        '\u{85}' => 'N',
        '\u{a0}' => '_',
        '\u{2028}' => 'L',
        '\u{2029}' => 'P',
        _ => {
            let code = ch as u32;
            return match code {
                0..=0xff => format!("\\x{code:02X}"),
                0x100..=0xffff => format!("\\u{code:04X}"),
                _ => format!("\\U{code:08X}"),
            };
        }
    };
    format!("\\{short}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn terse(value: Value) -> String {
        dump(&value, &Options::terse())
    }

    fn nice(value: Value) -> String {
        dump(&value, &Options::nice())
    }

    // Expected texts are ansible-core 2.19's output for the same values.
    #[test]
    fn strings_that_would_retype_are_quoted() {
        assert_eq!(terse(json!("yes")), "'yes'\n");
        assert_eq!(terse(json!("0644")), "'0644'\n");
        assert_eq!(terse(json!("2024-01-31")), "'2024-01-31'\n");
        assert_eq!(terse(json!("1e5")), "1e5\n");
        assert_eq!(terse(json!("")), "''\n");
        assert_eq!(terse(json!("it's")), "it's\n");
        assert_eq!(terse(json!("'q'")), "'''q'''\n");
        assert_eq!(terse(json!("a\tb")), "\"a\\tb\"\n");
        assert_eq!(terse(json!("multi\nline\n")), "'multi\n\n  line\n\n  '\n");
    }

    #[test]
    fn leaf_collections_are_inline_in_to_yaml_only() {
        let value = json!({"b": [1, "two", {"x": null, "y": true}], "a": "yes"});
        assert_eq!(terse(value.clone()), "a: 'yes'\nb:\n- 1\n- two\n- {x: null, y: true}\n");
        assert_eq!(nice(value), "a: 'yes'\nb:\n- 1\n- two\n-   x: null\n    y: true\n");
        assert_eq!(nice(json!([[1, 2], []])), "-   - 1\n    - 2\n- []\n");
    }

    #[test]
    fn long_scalars_fold_at_the_width() {
        let text = format!("{} {}", "a".repeat(100), "b".repeat(10));
        assert_eq!(terse(json!(text)), format!("{}\n  {}\n", "a".repeat(100), "b".repeat(10)));
        let tabbed = "a very long line with a tab\tthat goes on and on past the eighty column \
                      limit of the dumper, escaped";
        assert_eq!(
            terse(json!(tabbed)),
            "\"a very long line with a tab\\tthat goes on and on past the eighty column limit \
             of\n  the dumper, escaped\"\n"
        );
    }

    #[test]
    fn keys_sort_unless_asked_and_documents_may_be_marked() {
        let options = Options { sort_keys: false, explicit_start: true, ..Options::nice() };
        assert_eq!(dump(&json!({"z": 1, "a": {}}), &options), "---\nz: 1\na: {}\n");
        assert_eq!(terse(json!({"": 3, "multi\nkey": 4})), "{'': 3, ? 'multi\n\n    key' : 4}\n");
    }

    #[test]
    fn floats_read_back_as_floats() {
        assert_eq!(terse(json!(1e16)), "1.0e+16\n");
        assert_eq!(terse(json!(0.00001)), "1.0e-05\n");
        assert_eq!(terse(json!(0.0001)), "0.0001\n");
        assert_eq!(terse(json!(3.0)), "3.0\n");
    }
}
