//! Debian version strings: ordering as dpkg orders them (epoch, upstream, revision, with `~`
//! sorting before everything), and the shell-style globs apt's `name=1.0*` pins accept.

use std::cmp::Ordering;

/// Compares two Debian versions as `dpkg --compare-versions` does.
pub fn compare(left: &str, right: &str) -> Ordering {
    let (left_epoch, left_upstream, left_revision) = split(left);
    let (right_epoch, right_upstream, right_revision) = split(right);
    left_epoch
        .cmp(&right_epoch)
        .then_with(|| compare_part(left_upstream, right_upstream))
        .then_with(|| compare_part(left_revision, right_revision))
}

/// Epoch (0 when absent), upstream version, and revision (empty when absent).
fn split(version: &str) -> (u64, &str, &str) {
    let (epoch, rest) = match version.split_once(':') {
        Some((epoch, rest)) if epoch.bytes().all(|b| b.is_ascii_digit()) => {
            (epoch.parse().unwrap_or(0), rest)
        }
        _ => (0, version),
    };
    match rest.rsplit_once('-') {
        Some((upstream, revision)) => (epoch, upstream, revision),
        None => (epoch, rest, ""),
    }
}

/// dpkg's alternation of non-digit runs (compared by `weight`) and digit runs (numerically).
fn compare_part(left: &str, right: &str) -> Ordering {
    let (mut left, mut right) = (left.as_bytes(), right.as_bytes());
    while !left.is_empty() || !right.is_empty() {
        let left_text = left.iter().take_while(|b| !b.is_ascii_digit()).count();
        let right_text = right.iter().take_while(|b| !b.is_ascii_digit()).count();
        let order = compare_text(&left[..left_text], &right[..right_text]);
        if order != Ordering::Equal {
            return order;
        }
        (left, right) = (&left[left_text..], &right[right_text..]);

        let left_digits = left.iter().take_while(|b| b.is_ascii_digit()).count();
        let right_digits = right.iter().take_while(|b| b.is_ascii_digit()).count();
        let order = compare_number(&left[..left_digits], &right[..right_digits]);
        if order != Ordering::Equal {
            return order;
        }
        (left, right) = (&left[left_digits..], &right[right_digits..]);
    }
    Ordering::Equal
}

fn compare_text(left: &[u8], right: &[u8]) -> Ordering {
    let length = left.len().max(right.len());
    for index in 0..length {
        let order = weight(left.get(index)).cmp(&weight(right.get(index)));
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

/// `~` sorts before the end of a part, letters before other characters.
fn weight(byte: Option<&u8>) -> i32 {
    match byte {
        None => 0,
        Some(b'~') => -1,
        Some(b) if b.is_ascii_alphabetic() => i32::from(*b),
        Some(b) => i32::from(*b) + 256,
    }
}

fn compare_number(left: &[u8], right: &[u8]) -> Ordering {
    let trim =
        |digits: &[u8]| -> Vec<u8> { digits.iter().skip_while(|b| **b == b'0').copied().collect() };
    let (left, right) = (trim(left), trim(right));
    left.len().cmp(&right.len()).then_with(|| left.cmp(&right))
}

/// Shell-style matching (`*`, `?`, `[...]`, `[!...]`), as Python's fnmatch does it.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    glob_at(&pattern, &text)
}

fn glob_at(pattern: &[char], text: &[char]) -> bool {
    match pattern.first() {
        None => text.is_empty(),
        Some('*') => (0..=text.len()).any(|skip| glob_at(&pattern[1..], &text[skip..])),
        Some('?') => !text.is_empty() && glob_at(&pattern[1..], &text[1..]),
        Some('[') => match (class_end(pattern), text.first()) {
            (Some(end), Some(c)) => {
                class_matches(&pattern[1..end], *c) && glob_at(&pattern[end + 1..], &text[1..])
            }
            (Some(_), None) => false,
            (None, _) => text.first() == Some(&'[') && glob_at(&pattern[1..], &text[1..]),
        },
        Some(c) => text.first() == Some(c) && glob_at(&pattern[1..], &text[1..]),
    }
}

/// The index of the `]` closing a class that starts at 0; a `]` first in the class is literal.
fn class_end(pattern: &[char]) -> Option<usize> {
    let mut index = 1;
    if pattern.get(index) == Some(&'!') {
        index += 1;
    }
    if pattern.get(index) == Some(&']') {
        index += 1;
    }
    (index..pattern.len()).find(|i| pattern[*i] == ']')
}

fn class_matches(class: &[char], c: char) -> bool {
    let (negated, class) = match class.first() {
        Some('!') => (true, &class[1..]),
        _ => (false, class),
    };
    let mut index = 0;
    let mut found = false;
    while index < class.len() {
        if index + 2 < class.len() && class[index + 1] == '-' {
            found |= class[index] <= c && c <= class[index + 2];
            index += 3;
        } else {
            found |= class[index] == c;
            index += 1;
        }
    }
    found != negated
}

/// Whether a package name is a pattern apt-get would not take literally.
pub fn is_glob(name: &str) -> bool {
    name.chars().any(|c| "*?[]!".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_like_dpkg() {
        let ascending = [
            "1.0~rc1-1",
            "1.0-1",
            "1.0-1+b1",
            "1.0-2",
            "1.0a-1",
            "1.0.1-1",
            "1.2-1",
            "1.10-1",
            "1:0.9-1",
        ];
        for pair in ascending.windows(2) {
            assert_eq!(compare(pair[0], pair[1]), Ordering::Less, "{} < {}", pair[0], pair[1]);
            assert_eq!(compare(pair[1], pair[0]), Ordering::Greater);
        }
        assert_eq!(compare("1.01", "1.1"), Ordering::Equal);
        assert_eq!(compare("0:2.0", "2.0"), Ordering::Equal);
        assert_eq!(compare("2.0-1~bpo1", "2.0-1"), Ordering::Less);
    }

    #[test]
    fn globs_like_fnmatch() {
        assert!(glob_matches("1.0*", "1.0-1"));
        assert!(!glob_matches("1.0*", "2.0-1"));
        assert!(glob_matches("bramble-?", "bramble-a"));
        assert!(glob_matches("lib[ab]*", "libb2"));
        assert!(!glob_matches("lib[!ab]*", "libb2"));
        assert!(glob_matches("[a-c]x", "bx"));
        assert!(is_glob("python3-*"));
        assert!(!is_glob("python3-apt"));
    }
}
