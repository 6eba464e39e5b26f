//! Passwords given to a run (become, SSH, vault): read from a file, printed by an executable
//! file, or typed at the terminal; never read from a stdin that is not a terminal.

use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::{Error, Result};

/// The password in `path`, or what `path` prints when it is executable (as Ansible runs
/// vault password scripts); trailing line breaks are not part of it.
pub fn from_file(path: &Path, what: &str) -> Result<String> {
    let metadata = std::fs::metadata(path).map_err(|error| {
        Error::argument(format!("the {what} file {} could not be read: {error}", path.display()))
    })?;
    let text = if metadata.permissions().mode() & 0o111 != 0 {
        // A bare name would be looked up on PATH; the file meant is the one here.
        let program = if path.is_relative() { Path::new(".").join(path) } else { path.into() };
        let output = std::process::Command::new(program).output().map_err(|error| {
            Error::argument(format!("the {what} script {} could not run: {error}", path.display()))
        })?;
        if !output.status.success() {
            return Err(Error::argument(format!(
                "the {what} script {} failed ({}): {}",
                path.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        String::from_utf8_lossy(&output.stdout).into_owned()
    } else {
        std::fs::read_to_string(path)
            .map_err(|source| Error::FileRead { path: path.to_path_buf(), source })?
    };
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}

/// Asks for a password on the terminal without echoing it. `flag` names the option that
/// asked, for the error when there is no terminal to ask on.
pub fn prompt(prompt: &str, flag: &str, alternative: &str) -> Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Error::argument(format!(
            "{flag} asks for a password, but stdin is not a terminal; give it with {alternative}"
        )));
    }
    ask(prompt, false)
        .map_err(|error| Error::argument(format!("{flag}: could not read the password: {error}")))
}

/// Asks one line on the terminal (stdin), the question on stderr; without echo unless
/// `echo`. The line break typed is not part of the answer.
pub fn ask(question: &str, echo: bool) -> std::io::Result<String> {
    crate::output::err(question);
    let _ = std::io::stderr().flush();
    let silenced = (!echo).then(EchoOff::new);
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if silenced.is_some() {
        crate::output::err("\n");
    }
    drop(silenced);
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Turns terminal echo off for as long as it lives.
struct EchoOff {
    saved: Option<libc::termios>,
}

impl EchoOff {
    fn new() -> EchoOff {
        // SAFETY: termios is plain data, filled by tcgetattr on the stdin descriptor.
        let mut settings: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut settings) } != 0 {
            return EchoOff { saved: None };
        }
        let saved = settings;
        settings.c_lflag &= !libc::ECHO;
        // SAFETY: the settings were read from this same descriptor just above.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &settings) };
        EchoOff { saved: Some(saved) }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            // SAFETY: restores the settings tcgetattr gave for this descriptor.
            unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, saved) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_and_script() {
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("pass");
        std::fs::write(&file, "s3cret\n").unwrap();
        assert_eq!(from_file(&file, "vault password").unwrap(), "s3cret");
        let script = directory.path().join("pass.sh");
        std::fs::write(&script, "#!/bin/sh\necho from-script\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(from_file(&script, "vault password").unwrap(), "from-script");
    }
}
