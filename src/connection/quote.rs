//! The one quoting helper: every user string goes through it before it reaches a shell.

/// Quotes a word for POSIX `sh`, leaving obviously safe words bare for readable logs.
pub fn quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word.chars().all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c));
    if safe {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', "'\"'\"'"))
}

/// Quotes each word and joins them with spaces: an argv as one command line.
pub fn quote_all<S: AsRef<str>>(words: &[S]) -> String {
    words.iter().map(|word| quote(word.as_ref())).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(quote("/etc/passwd"), "/etc/passwd");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("it's"), "'it'\"'\"'s'");
        assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(quote_all(&["echo", "a;b"]), "echo 'a;b'");
    }

    #[test]
    fn quoted_words_survive_a_real_shell() {
        for word in ["it's", "a\"b", "$HOME", "`id`", "x\ny", "*", "\\"] {
            let output = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(format!("printf %s {}", quote(word)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&output.stdout), word);
        }
    }
}

/// Splits a command line into words as Python's `shlex.split` does (quotes and backslashes).
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut characters = line.chars();
    while let Some(character) = characters.next() {
        match character {
            '\'' => {
                in_word = true;
                loop {
                    match characters.next() {
                        Some('\'') => break,
                        Some(c) => current.push(c),
                        None => return Err(format!("no closing quotation in `{line}`")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match characters.next() {
                        Some('"') => break,
                        Some('\\') => match characters.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => current.push(c),
                            Some(c) => {
                                current.push('\\');
                                current.push(c);
                            }
                            None => return Err(format!("no closing quotation in `{line}`")),
                        },
                        Some(c) => current.push(c),
                        None => return Err(format!("no closing quotation in `{line}`")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = characters.next() {
                    current.push(c);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                current.push(c);
            }
        }
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

#[cfg(test)]
mod split_tests {
    use super::split_words;

    #[test]
    fn splits_like_shlex() {
        assert_eq!(split_words(r#"echo "a b" 'c d' e\ f"#).unwrap(), ["echo", "a b", "c d", "e f"]);
        assert!(split_words("echo 'open").is_err());
    }
}
