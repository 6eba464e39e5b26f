//! `find`: list what is under some directories with GNU find in one command, then filter by
//! Ansible's rules (patterns, type, age, size, mode, contents) on the controller.

use std::collections::{HashMap, HashSet};

use fancy_regex::Regex;
use serde_json::{Map, Value};

use super::{Call, Failure, Outcome, edit, fail, result};
use crate::connection::{quote, quote_all};

/// One entry as `find -printf` described it.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub kind: char,
    pub mode: u32,
    pub uid: i64,
    pub gid: i64,
    pub size: i64,
    pub nlink: i64,
    pub inode: i64,
    pub dev: i64,
    pub atime: f64,
    pub mtime: f64,
    pub ctime: f64,
    pub owner: String,
    pub group: String,
    pub path: String,
}

const FIELDS: usize = 14;
const PRINTF: &str = "%y\\0%m\\0%U\\0%G\\0%s\\0%n\\0%i\\0%D\\0%A@\\0%T@\\0%C@\\0%u\\0%g\\0%p\\0";

/// The script for all paths: per path a `\x01` record saying whether it is a directory, then
/// its entries as NUL-separated fields.
pub fn command(paths: &[String], max_depth: Option<i64>) -> String {
    let depth = max_depth.map(|depth| format!(" -maxdepth {depth}")).unwrap_or_default();
    paths
        .iter()
        .map(|path| {
            let path = quote(path);
            format!(
                "if [ -d {path} ]; then printf '\\001\\0ok\\0'; find {path} -mindepth 1{depth} -printf '{PRINTF}' 2>/dev/null; \
                 else printf '\\001\\0notdir\\0'; fi"
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Per path: None when it is not a directory, else its entries in find's order.
pub fn parse(stdout: &[u8]) -> Vec<Option<Vec<Entry>>> {
    let text = String::from_utf8_lossy(stdout);
    let mut tokens = text.split('\0').peekable();
    let mut out: Vec<Option<Vec<Entry>>> = Vec::new();
    while let Some(token) = tokens.next() {
        if token == "\u{1}" {
            let is_dir = tokens.next() == Some("ok");
            out.push(is_dir.then(Vec::new));
            continue;
        }
        if token.is_empty() && tokens.peek().is_none() {
            break;
        }
        let mut fields = vec![token];
        fields.extend(tokens.by_ref().take(FIELDS - 1));
        if fields.len() < FIELDS {
            break;
        }
        let number = |index: usize| fields[index].parse::<i64>().unwrap_or(-1);
        let float = |index: usize| fields[index].parse::<f64>().unwrap_or(0.0);
        let entry = Entry {
            kind: fields[0].chars().next().unwrap_or('?'),
            mode: u32::from_str_radix(fields[1], 8).unwrap_or(0),
            uid: number(2),
            gid: number(3),
            size: number(4),
            nlink: number(5),
            inode: number(6),
            dev: number(7),
            atime: float(8),
            mtime: float(9),
            ctime: float(10),
            owner: fields[11].to_string(),
            group: fields[12].to_string(),
            path: fields[13].to_string(),
        };
        if let Some(Some(entries)) = out.last_mut() {
            entries.push(entry);
        }
    }
    out
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(parent, _)| parent)
}

fn name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Python's `os.walk` order (a directory's files, then its directories, then each
/// directory in turn), and the number of entries `os.walk` looked at.
pub fn walk_order(
    root: &str,
    entries: &[Entry],
    recurse: bool,
    depth: Option<i64>,
) -> (Vec<Entry>, usize) {
    let mut children: HashMap<&str, Vec<&Entry>> = HashMap::new();
    for entry in entries {
        children.entry(parent(&entry.path)).or_default().push(entry);
    }
    let root = root.trim_end_matches('/');
    let root = if root.is_empty() { "/" } else { root };
    let root_depth = root.matches('/').count() as i64 + i64::from(root != "/");
    let mut ordered = Vec::new();
    let mut examined = 0;
    let mut pending = vec![root.to_string()];
    let mut seen = HashSet::new();
    while let Some(directory) = pending.pop() {
        if !seen.insert(directory.clone()) {
            continue;
        }
        let key = if directory == "/" { "" } else { directory.as_str() };
        let listed = children.get(key).cloned().unwrap_or_default();
        examined += listed.len();
        let (dirs, files): (Vec<&Entry>, Vec<&Entry>) = listed.iter().partition(|e| e.kind == 'd');
        let mut descend = Vec::new();
        for entry in files.iter().chain(dirs.iter()) {
            let entry_depth = entry.path.matches('/').count() as i64 - root_depth + 1;
            if depth.is_some_and(|limit| entry_depth > limit) {
                continue;
            }
            ordered.push((*entry).clone());
            if entry.kind == 'd' {
                descend.push(entry.path.clone());
            }
        }
        if !recurse {
            break;
        }
        pending.extend(descend.into_iter().rev());
    }
    (ordered, examined)
}

/// Ansible's name filter: fnmatch globs (or regexps matched at the start) with excludes.
pub fn name_matches(file: &str, patterns: &[Pattern], excludes: &[Pattern]) -> bool {
    if patterns.is_empty() && excludes.is_empty() {
        return true;
    }
    patterns.iter().any(|pattern| pattern.matches(file))
        && !excludes.iter().any(|exclude| exclude.matches(file))
}

/// A `patterns:` item, compiled once.
pub struct Pattern(Regex);

impl Pattern {
    pub fn new(text: &str, use_regex: bool) -> Result<Pattern, Failure> {
        let source = if use_regex { format!("^(?:{text})") } else { glob_to_regex(text) };
        edit::compile(&source, "pattern").map(Pattern)
    }

    fn matches(&self, file: &str) -> bool {
        edit::search(&self.0, file)
    }
}

/// Python's `fnmatch.translate`: `*`, `?`, `[...]`, `[!...]`, whole-name match.
fn glob_to_regex(glob: &str) -> String {
    let mut out = String::from("^(?s:");
    let characters: Vec<char> = glob.chars().collect();
    let mut index = 0;
    while index < characters.len() {
        let c = characters[index];
        index += 1;
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '[' => {
                let close = characters[index..].iter().skip(1).position(|c| *c == ']');
                match close {
                    Some(offset) => {
                        let end = index + 1 + offset;
                        let mut class: String = characters[index..end].iter().collect();
                        if let Some(rest) = class.strip_prefix('!') {
                            class = format!("^{rest}");
                        }
                        out.push('[');
                        out.push_str(&class.replace('\\', "\\\\"));
                        out.push(']');
                        index = end + 1;
                    }
                    None => out.push_str("\\["),
                }
            }
            other => out.push_str(&fancy_regex::escape(&other.to_string())),
        }
    }
    out.push_str(")$");
    out
}

/// `age:`/`size:` with their unit suffixes, in seconds or bytes.
pub fn with_unit(text: &str, units: &[(char, i64)]) -> Option<i64> {
    let text = text.trim().to_ascii_lowercase();
    let (number, factor) = match text.chars().last() {
        Some(last) if last.is_ascii_alphabetic() => {
            let factor = units.iter().find(|(unit, _)| *unit == last)?.1;
            (&text[..text.len() - 1], factor)
        }
        _ => (text.as_str(), 1),
    };
    number.parse::<i64>().ok().map(|n| n * factor)
}

const AGE_UNITS: &[(char, i64)] = &[('s', 1), ('m', 60), ('h', 3600), ('d', 86400), ('w', 604800)];
const SIZE_UNITS: &[(char, i64)] =
    &[('b', 1), ('k', 1 << 10), ('m', 1 << 20), ('g', 1 << 30), ('t', 1 << 40)];

/// The filters that need no file contents.
pub struct Filters {
    pub patterns: Vec<Pattern>,
    pub excludes: Vec<Pattern>,
    pub file_type: String,
    pub age: Option<i64>,
    pub age_stamp: String,
    pub size: Option<i64>,
    pub mode: Option<(u32, bool)>,
    pub hidden: bool,
    pub now: f64,
}

impl Filters {
    pub fn keep(&self, entry: &Entry) -> bool {
        let file = name(&entry.path);
        if file.starts_with('.') && !self.hidden {
            return false;
        }
        let stamp = match self.age_stamp.as_str() {
            "atime" => entry.atime,
            "ctime" => entry.ctime,
            _ => entry.mtime,
        };
        let age_ok = match self.age {
            None => true,
            Some(age) if age >= 0 => self.now - stamp >= age as f64,
            Some(age) => self.now - stamp <= (-age) as f64,
        };
        let size_ok = match self.size {
            None => true,
            Some(size) if size >= 0 => entry.size >= size,
            Some(size) => entry.size <= -size,
        };
        let mode_ok = match self.mode {
            None => true,
            Some((bits, true)) => entry.mode & 0o7777 == bits,
            Some((bits, false)) => entry.mode & bits != 0,
        };
        let common = name_matches(file, &self.patterns, &self.excludes) && age_ok && mode_ok;
        match (self.file_type.as_str(), entry.kind) {
            ("any", 'f') => common && size_ok,
            ("any", _) => common,
            ("directory", 'd') | ("link", 'l') => common,
            ("file", 'f') => common && size_ok,
            _ => false,
        }
    }
}

/// The `files[]` item Ansible reports for an entry.
pub fn describe(entry: &Entry) -> Map<String, Value> {
    let bits = entry.mode;
    let flag = |mask: u32| Value::Bool(bits & mask != 0);
    let mut item = Map::new();
    item.insert("path".into(), Value::from(entry.path.clone()));
    item.insert("mode".into(), Value::from(format!("{:04o}", bits & 0o7777)));
    for (key, kind) in [
        ("isdir", 'd'),
        ("ischr", 'c'),
        ("isblk", 'b'),
        ("isreg", 'f'),
        ("isfifo", 'p'),
        ("islnk", 'l'),
        ("issock", 's'),
    ] {
        item.insert(key.into(), Value::Bool(entry.kind == kind));
    }
    item.insert("uid".into(), Value::from(entry.uid));
    item.insert("gid".into(), Value::from(entry.gid));
    item.insert("size".into(), Value::from(entry.size));
    item.insert("inode".into(), Value::from(entry.inode));
    item.insert("dev".into(), Value::from(entry.dev));
    item.insert("nlink".into(), Value::from(entry.nlink));
    item.insert("atime".into(), Value::from(entry.atime));
    item.insert("mtime".into(), Value::from(entry.mtime));
    item.insert("ctime".into(), Value::from(entry.ctime));
    let name_or_empty = |text: &str| {
        if text.chars().all(|c| c.is_ascii_digit()) { String::new() } else { text.to_string() }
    };
    item.insert("gr_name".into(), Value::from(name_or_empty(&entry.group)));
    item.insert("pw_name".into(), Value::from(name_or_empty(&entry.owner)));
    for (key, mask) in [
        ("wusr", 0o200),
        ("rusr", 0o400),
        ("xusr", 0o100),
        ("wgrp", 0o020),
        ("rgrp", 0o040),
        ("xgrp", 0o010),
        ("woth", 0o002),
        ("roth", 0o004),
        ("xoth", 0o001),
        ("isuid", 0o4000),
        ("isgid", 0o2000),
    ] {
        item.insert(key.into(), flag(mask));
    }
    item
}

fn mode_filter(call: &Call<'_>) -> Result<Option<(u32, bool)>, Failure> {
    let exact = call.args.flag(&["exact_mode"], true)?;
    match call.args.value(&["mode"]) {
        None => Ok(None),
        Some(Value::String(text)) if text.chars().all(|c| c.is_digit(8)) && !text.is_empty() => {
            Ok(Some((u32::from_str_radix(text, 8).unwrap_or(0) & 0o7777, exact)))
        }
        Some(Value::String(text)) => {
            Err(fail(format!("not supported yet: find with a symbolic mode ({text})")))
        }
        Some(other) => Err(fail(format!(
            "argument 'mode' is not a string and conversion is not allowed, value is of type {}",
            if other.is_number() { "int" } else { "other" }
        ))),
    }
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let paths = call.args.list(&["paths", "name", "path"]);
    if paths.is_empty() {
        return Err(fail("missing required arguments: paths"));
    }
    let use_regex = call.args.flag(&["use_regex"], false)?;
    let mut pattern_texts = call.args.list(&["patterns", "pattern"]);
    if pattern_texts.is_empty() {
        pattern_texts.push(if use_regex { ".*".into() } else { "*".into() });
    }
    let compile = |texts: Vec<String>| -> Result<Vec<Pattern>, Failure> {
        texts.iter().map(|text| Pattern::new(text, use_regex)).collect()
    };
    let age = match call.args.string(&["age"]) {
        None => None,
        Some(text) => {
            Some(with_unit(&text, AGE_UNITS).ok_or_else(|| fail("failed to process age"))?)
        }
    };
    let size = match call.args.string(&["size"]) {
        None => None,
        Some(text) => {
            Some(with_unit(&text, SIZE_UNITS).ok_or_else(|| fail("failed to process size"))?)
        }
    };
    for unsupported in ["follow", "limit", "encoding"] {
        if call.args.value(&[unsupported]).is_some() {
            return Err(fail(format!("not supported yet: find with {unsupported}")));
        }
    }
    let filters = Filters {
        patterns: compile(pattern_texts)?,
        excludes: compile(call.args.list(&["excludes", "exclude"]))?,
        file_type: call
            .args
            .choice(&["file_type"], &["any", "directory", "file", "link"], Some("file"))?
            .unwrap_or_default(),
        age,
        age_stamp: call
            .args
            .choice(&["age_stamp"], &["atime", "ctime", "mtime"], Some("mtime"))?
            .unwrap_or_default(),
        size,
        mode: mode_filter(call)?,
        hidden: call.args.flag(&["hidden"], false)?,
        now: chrono::Utc::now().timestamp_millis() as f64 / 1000.0,
    };
    let recurse = call.args.flag(&["recurse"], false)?;
    let depth = match call.args.value(&["depth"]) {
        None => None,
        Some(_) => Some(call.args.integer(&["depth"], 0)?).filter(|depth| *depth > 0),
    };
    let read_whole_file = call.args.flag(&["read_whole_file"], false)?;
    let contains = call
        .args
        .string(&["contains"])
        .map(|c| contains_pattern(&c, read_whole_file))
        .transpose()?;
    let get_checksum = call.args.flag(&["get_checksum"], false)?;
    let algorithm = call
        .args
        .choice(
            &["checksum_algorithm", "checksum", "checksum_algo"],
            &["md5", "sha1", "sha224", "sha256", "sha384", "sha512"],
            Some("sha1"),
        )?
        .unwrap_or_default();

    // Query: one listing for every path.
    let max_depth = if !recurse { Some(1) } else { depth.map(|depth| depth + 1) };
    let output = call.remote.run(&command(&paths, max_depth)).await?;
    let listings = parse(&output.stdout);
    let mut matched = Vec::new();
    let mut skipped = Map::new();
    let mut examined = 0;
    for (index, path) in paths.iter().enumerate() {
        let Some(Some(entries)) = listings.get(index) else {
            let reason = format!("'{path}' is not a directory");
            skipped.insert(path.clone(), Value::from(reason));
            continue;
        };
        let (ordered, looked) = walk_order(path, entries, recurse, depth);
        examined += looked;
        matched.extend(ordered.into_iter().filter(|entry| filters.keep(entry)));
    }
    if let Some(pattern) = &contains {
        let files: Vec<String> =
            matched.iter().filter(|e| e.kind == 'f').map(|e| e.path.clone()).collect();
        let texts = contents(call, &files).await?;
        matched.retain(|entry| {
            entry.kind != 'f'
                || texts
                    .get(&entry.path)
                    .is_some_and(|text| content_matches(pattern, text, read_whole_file))
        });
    }
    let checksums = if get_checksum {
        let files: Vec<String> =
            matched.iter().filter(|e| e.kind == 'f').map(|e| e.path.clone()).collect();
        checksums(call, &algorithm, &files).await?
    } else {
        HashMap::new()
    };

    let files: Vec<Value> = matched
        .iter()
        .map(|entry| {
            let mut item = describe(entry);
            if let Some(sum) = checksums.get(&entry.path) {
                item.insert("checksum".into(), Value::from(sum.clone()));
            }
            Value::Object(item)
        })
        .collect();
    let msg = if skipped.is_empty() {
        "All paths examined"
    } else {
        "Not all paths examined, check warnings for details"
    };
    Ok(result([
        ("files", Value::from(files.clone())),
        ("changed", Value::Bool(false)),
        ("msg", Value::from(msg)),
        ("matched", Value::from(files.len())),
        ("examined", Value::from(examined)),
        ("skipped_paths", Value::Object(skipped)),
    ]))
}

/// `contains:` as Ansible applies it: matched at the start of some line (Python's
/// `re.match`), or with `read_whole_file` searched anywhere in the text.
pub fn contains_pattern(text: &str, whole: bool) -> Result<Regex, Failure> {
    let source = if whole { text.to_string() } else { format!("\\A(?:{text})") };
    edit::compile(&source, "contains")
}

pub fn content_matches(pattern: &Regex, text: &str, whole: bool) -> bool {
    if whole {
        return edit::search(pattern, text);
    }
    text.split_inclusive('\n').any(|line| edit::search(pattern, line))
}

/// The text of each file, in one command: its size line, then its bytes.
async fn contents(call: &Call<'_>, files: &[String]) -> Result<HashMap<String, String>, Failure> {
    if files.is_empty() {
        return Ok(HashMap::new());
    }
    let script = format!(
        "for f in {}; do printf '%s\\n' \"$(wc -c < \"$f\" 2>/dev/null || echo 0)\"; cat -- \"$f\" 2>/dev/null; done",
        quote_all(files)
    );
    let output = call.remote.run(&script).await?;
    let mut texts = HashMap::new();
    let mut rest: &[u8] = &output.stdout;
    for file in files {
        let Some(newline) = rest.iter().position(|b| *b == b'\n') else { break };
        let size: usize = String::from_utf8_lossy(&rest[..newline]).trim().parse().unwrap_or(0);
        let end = (newline + 1 + size).min(rest.len());
        texts.insert(file.clone(), String::from_utf8_lossy(&rest[newline + 1..end]).into_owned());
        rest = &rest[end..];
    }
    Ok(texts)
}

async fn checksums(
    call: &Call<'_>,
    algorithm: &str,
    files: &[String],
) -> Result<HashMap<String, String>, Failure> {
    if files.is_empty() {
        return Ok(HashMap::new());
    }
    let output = call.remote.run(&format!("{algorithm}sum -- {}", quote_all(files))).await?;
    Ok(output
        .stdout_text()
        .lines()
        .filter_map(|line| line.split_once("  "))
        .map(|(sum, path)| (path.to_string(), sum.to_string()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: char, path: &str) -> Entry {
        Entry {
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 10,
            nlink: 1,
            inode: 1,
            dev: 1,
            atime: 0.0,
            mtime: 100.0,
            ctime: 0.0,
            owner: "root".into(),
            group: "root".into(),
            path: path.into(),
        }
    }

    #[test]
    fn find_output_parses_per_path() {
        let fields =
            ["f", "644", "0", "0", "5", "1", "7", "2", "1.5", "2.5", "3.5", "root", "root"];
        let out = format!("\x01\0ok\0{}\0/d/a\0\x01\0notdir\0", fields.join("\0"));
        let out = out.as_bytes();
        let listings = parse(out);
        assert_eq!(listings.len(), 2);
        let entries = listings[0].as_ref().unwrap();
        assert_eq!((entries[0].path.as_str(), entries[0].size, entries[0].mtime), ("/d/a", 5, 2.5));
        assert!(listings[1].is_none());
        assert!(command(&["/a b".into()], Some(1)).contains("find '/a b' -mindepth 1 -maxdepth 1"));
    }

    #[test]
    fn walk_lists_files_before_directories_and_counts_what_it_saw() {
        let entries =
            [entry('d', "/r/sub"), entry('f', "/r/sub/x"), entry('f', "/r/a"), entry('f', "/r/.h")];
        let (ordered, examined) = walk_order("/r", &entries, true, None);
        let paths: Vec<_> = ordered.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["/r/a", "/r/.h", "/r/sub", "/r/sub/x"]);
        assert_eq!(examined, 4);
        let (flat, examined) = walk_order("/r/", &entries, false, None);
        assert_eq!((flat.len(), examined), (3, 3));
    }

    #[test]
    fn globs_match_whole_names() {
        let star = Pattern::new("*.conf", false).unwrap();
        assert!(name_matches("a.conf", &[star], &[]));
        let patterns = [Pattern::new("[!x]?.log", false).unwrap()];
        assert!(name_matches("ab.log", &patterns, &[]));
        assert!(!name_matches("xb.log", &patterns, &[]));
        let regex = [Pattern::new("a.*", true).unwrap()];
        assert!(!name_matches("ba", &regex, &[]));
        let excludes = [Pattern::new("b*", false).unwrap()];
        assert!(!name_matches("b.conf", &[Pattern::new("*", false).unwrap()], &excludes));
    }

    #[test]
    fn filters_by_type_age_size_and_hidden() {
        let filters = Filters {
            patterns: vec![Pattern::new("*", false).unwrap()],
            excludes: Vec::new(),
            file_type: "file".into(),
            age: Some(50),
            age_stamp: "mtime".into(),
            size: Some(-10),
            mode: Some((0o644, true)),
            hidden: false,
            now: 200.0,
        };
        assert!(filters.keep(&entry('f', "/r/a")));
        assert!(!filters.keep(&entry('d', "/r/d")));
        assert!(!filters.keep(&entry('f', "/r/.a")));
        assert_eq!(with_unit("2d", AGE_UNITS), Some(172800));
        assert_eq!(with_unit("-1k", SIZE_UNITS), Some(-1024));
        assert_eq!(with_unit("1x", SIZE_UNITS), None);
    }

    #[test]
    fn contents_match_at_a_line_start_or_anywhere() {
        let line = contains_pattern("port", false).unwrap();
        assert!(content_matches(&line, "a\nport 1\n", false));
        assert!(!content_matches(&line, "a port\n", false));
        let whole = contains_pattern("a\\nb", true).unwrap();
        assert!(content_matches(&whole, "xa\nb", true));
    }
}
