//! `command`'s `expand_argument_vars`: each argument's `$VAR`, `${VAR}` and leading `~`
//! expanded on the target as ansible-core's Python does (`os.path.expandvars`, then
//! `os.path.expanduser`), by a POSIX shell script: no word splitting, no globbing, and an
//! unset variable left as written.

use crate::connection::{quote, quote_all};

/// One part of an argument: text kept as it is, or a variable reference.
#[derive(Debug, PartialEq)]
enum Piece<'a> {
    Text(&'a str),
    Variable { name: &'a str, written: &'a str },
}

/// The command line running `words` with their variables and home directories expanded:
/// the plain quoted words when none needs it, else a `{ …; }` group that builds the
/// arguments with `set --` and runs `"$@"` (a group, so `cd dir && ` can come before it).
pub fn command_line(words: &[String]) -> String {
    if !words.iter().any(|word| needs_expansion(word)) {
        return quote_all(words);
    }
    let mut script = vec![PRELUDE.to_string(), "set --".to_string()];
    script.extend(words.iter().map(|word| build_word(word)));
    script.push("\"$@\"".to_string());
    format!("{{ {}; }}", script.join("; "))
}

/// Python sees only the environment, so a variable counts only when the shell exports it:
/// `export -p` lists those (`export NAME=…` in dash, `declare -x NAME=…` in bash; a name
/// exported without a value has no `=` and is unset for Python too). `bramble_tilde` is
/// `expanduser` on `$bramble_w`: `~` is `$HOME` (the user's home without one), `~user` that
/// user's home through the shell's own lookup, trailing slashes of the home dropped.
const PRELUDE: &str = r#"bramble_exports="
$(export -p)"; bramble_is() { case $bramble_exports in *"
export $1="*|*"
declare -x $1="*) return 0 ;; esac; return 1; }; bramble_tilde() { case $bramble_w in '~'*) ;; *) return 0 ;; esac; bramble_u=${bramble_w%%/*}; bramble_u=${bramble_u#'~'}; bramble_r=${bramble_w#'~'"$bramble_u"}; if [ -z "$bramble_u" ] && bramble_is HOME; then bramble_h=$HOME; else [ -n "$bramble_u" ] || bramble_u=$(id -un) || return 0; case $bramble_u in *[!A-Za-z0-9._-]*|-*) return 0 ;; esac; eval "bramble_h=~$bramble_u"; [ "$bramble_h" != "~$bramble_u" ] || return 0; fi; while [ "${bramble_h%/}" != "$bramble_h" ]; do bramble_h=${bramble_h%/}; done; bramble_w=$bramble_h$bramble_r; [ -n "$bramble_w" ] || bramble_w=/; }"#;

/// A script printing each of `words` expanded, each followed by a NUL byte.
pub fn printing_script(words: &[String]) -> String {
    let mut script = vec![PRELUDE.to_string(), "set --".to_string()];
    script.extend(words.iter().map(|word| build_word(word)));
    script.push("printf '%s\\0' \"$@\"".to_string());
    script.join("; ")
}

pub fn needs_expansion(word: &str) -> bool {
    word.starts_with('~') || pieces(word).iter().any(|piece| variable_name(piece).is_some())
}

/// The shell that appends one expanded argument to `"$@"`.
fn build_word(word: &str) -> String {
    let pieces = pieces(word);
    let mut steps = vec!["bramble_w=''".to_string()];
    for piece in &pieces {
        steps.push(match (piece, variable_name(piece)) {
            (Piece::Variable { written, .. }, Some(name)) => format!(
                "if bramble_is {name}; then bramble_w=\"$bramble_w${name}\"; else bramble_w=\"$bramble_w\"{}; fi",
                quote(written)
            ),
            (Piece::Variable { written: text, .. } | Piece::Text(text), _) => {
                format!("bramble_w=\"$bramble_w\"{}", quote(text))
            }
        });
    }
    // A variable's value may itself start with `~`, as expanduser runs after expandvars.
    if word.starts_with('~') || matches!(pieces.first(), Some(Piece::Variable { .. })) {
        steps.push("bramble_tilde".to_string());
    }
    steps.push("set -- \"$@\" \"$bramble_w\"".to_string());
    steps.join("; ")
}

/// The name to look up, for a reference the shell can read: Python's `\w+` also takes names
/// such as `1x` or `${a-b}`, which no POSIX shell can hold (so they are unset here), and the
/// shell's `$_` is its last command's word, never the environment's.
fn variable_name<'a>(piece: &Piece<'a>) -> Option<&'a str> {
    let Piece::Variable { name, .. } = piece else { return None };
    let mut chars = name.chars();
    let first = chars.next()?;
    let valid = (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    (valid && *name != "_").then_some(name)
}

/// Splits an argument as Python's `expandvars` scans it: `$` then ASCII word characters, or
/// `${` up to the next `}`; any other `$` is text.
fn pieces(word: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut text_start = 0;
    let mut index = 0;
    let bytes = word.as_bytes();
    while let Some(offset) = word[index..].find('$') {
        let dollar = index + offset;
        let rest = &word[dollar + 1..];
        let (name, length) = if rest.starts_with('{') {
            match rest.find('}') {
                Some(close) => (&rest[1..close], close + 1),
                None => ("", 0),
            }
        } else {
            let run = rest.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_').count();
            (&rest[..run], run)
        };
        if length == 0 {
            index = dollar + 1;
            continue;
        }
        if text_start < dollar {
            pieces.push(Piece::Text(&word[text_start..dollar]));
        }
        let end = dollar + 1 + length;
        pieces.push(Piece::Variable { name, written: &word[dollar..end] });
        text_start = end;
        index = end;
    }
    if text_start < bytes.len() {
        pieces.push(Piece::Text(&word[text_start..]));
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::files::tests::SHELLS;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|word| word.to_string()).collect()
    }

    /// Runs the expanded `printf '[%s]\n' …` under each shell with `setup` before it.
    fn printed(setup: &str, arguments: &[&str]) -> Vec<String> {
        let mut all = words(&["printf", "[%s]\\n"]);
        all.extend(words(arguments));
        let script = format!("{setup} {}", command_line(&all));
        SHELLS
            .iter()
            .map(|shell| {
                let output = std::process::Command::new(shell)
                    .args(["-c", &script])
                    .env_clear()
                    .env("HOME", "/home/pi/")
                    .env("SET", "value")
                    .env("EMPTY", "")
                    .env("SPACED", "a  b * c")
                    .env("TILDED", "~/t")
                    .env("PATH", "/usr/bin:/bin")
                    .output()
                    .expect("a shell");
                assert!(output.status.success(), "{shell}: {output:?}");
                String::from_utf8_lossy(&output.stdout).into_owned()
            })
            .collect()
    }

    #[test]
    fn words_without_variables_or_tilde_stay_plain() {
        assert_eq!(
            command_line(&words(&["echo", "a b", "$", "a$", "$$", "${x"])),
            quote_all(&words(&["echo", "a b", "$", "a$", "$$", "${x"]))
        );
    }

    #[test]
    fn pieces_follow_pythons_expandvars() {
        use Piece::{Text, Variable};
        assert_eq!(
            pieces("a$HOME/${X}y$1$"),
            vec![
                Text("a"),
                Variable { name: "HOME", written: "$HOME" },
                Text("/"),
                Variable { name: "X", written: "${X}" },
                Text("y"),
                Variable { name: "1", written: "$1" },
                Text("$"),
            ]
        );
        assert_eq!(pieces("${}x"), vec![Variable { name: "", written: "${}" }, Text("x")]);
        assert_eq!(pieces("${HOME"), vec![Text("${HOME")]);
    }

    // The expectations are what ansible-core 2.19 printed for the same arguments and
    // environment (its HOME without the trailing slash, as expanduser strips it).
    #[test]
    fn variables_expand_as_ansible_core_expands_them() {
        let expected = "[value]\n[valuex]\n[$NOPE]\n[${NOPE}]\n[]\n[a  b * c]\n[x/home/pi/]\n[$1]\n[${}]\n[${a-b}]\n[$_]\n[valuevalue]\n";
        let arguments = [
            "$SET", "${SET}x", "$NOPE", "${NOPE}", "$EMPTY", "$SPACED", "x$HOME", "$1", "${}",
            "${a-b}", "$_", "$SET$SET",
        ];
        for output in printed("", &arguments) {
            assert_eq!(output, expected);
        }
    }

    #[test]
    fn a_variable_the_shell_does_not_export_stays_as_written() {
        for output in printed("LOCAL=x; IFS=:;", &["$LOCAL", "$IFS", "$PPID", "$OPTIND"]) {
            assert_eq!(output, "[$LOCAL]\n[$IFS]\n[$PPID]\n[$OPTIND]\n");
        }
        for output in printed("LOCAL=x; export LOCAL;", &["$LOCAL"]) {
            assert_eq!(output, "[x]\n");
        }
    }

    #[test]
    fn a_leading_tilde_is_a_home_directory() {
        let arguments = ["~", "~/a", "~root/b", "~nosuchuser/c", "$TILDED", "a~", "~root"];
        for output in printed("", &arguments) {
            assert_eq!(
                output,
                "[/home/pi]\n[/home/pi/a]\n[/root/b]\n[~nosuchuser/c]\n[/home/pi/t]\n[a~]\n[/root]\n"
            );
        }
        // Without HOME, the home of the user running the command, as in Python.
        for output in printed("unset HOME;", &["~/a"]) {
            assert!(output.starts_with("[/") && output.ends_with("/a]\n"), "{output}");
        }
    }

    #[test]
    fn a_printing_script_gives_each_word_expanded() {
        let script = printing_script(&words(&["~/a b", "$SET/x", "plain"]));
        for shell in SHELLS {
            let output = std::process::Command::new(shell)
                .args(["-c", &script])
                .env("HOME", "/home/pi")
                .env("SET", "value")
                .output()
                .expect("a shell");
            assert_eq!(String::from_utf8_lossy(&output.stdout), "/home/pi/a b\0value/x\0plain\0");
        }
    }

    #[test]
    fn the_group_takes_stdin_and_exit_code_and_follows_cd() {
        let line = command_line(&words(&["sh", "-c", "cat; exit 3", "$SET"]));
        let script = format!("cd / && {line}");
        for shell in SHELLS {
            let (rc, stdout) = crate::modules::files::tests::run_in(shell, &script, b"in");
            assert_eq!((rc, stdout.as_str()), (3, "in"));
        }
    }
}
