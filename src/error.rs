//! The one error type of bramble, and how a source position is shown to the user.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// A loaded text file, kept so errors can quote the offending line.
#[derive(Debug)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

/// A position in a source file (1-based line and column).
#[derive(Clone, Debug)]
pub struct Mark {
    pub source: Arc<Source>,
    pub line: usize,
    pub column: usize,
}

impl Mark {
    /// `path:line:column`, the way compilers and editors expect it.
    pub fn location(&self) -> String {
        format!("{}:{}:{}", self.source.path.display(), self.line, self.column)
    }

    /// The offending line with a caret under the column.
    pub fn snippet(&self) -> String {
        let line = self.source.text.lines().nth(self.line.saturating_sub(1)).unwrap_or("");
        let caret = " ".repeat(self.column.saturating_sub(1));
        format!("{line}\n{caret}^ here")
    }
}

impl fmt::Display for Mark {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.location())
    }
}

/// Everything that can stop bramble before or between tasks.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not read {path}: {source}")]
    FileRead { path: PathBuf, source: std::io::Error },

    #[error("{mark}: YAML syntax error: {message}")]
    YamlSyntax { mark: Mark, message: String },

    #[error("{mark}: {message}")]
    PlaybookInvalid { mark: Mark, message: String },

    #[error("{path}:{line}: {message}")]
    InventoryInvalid { path: PathBuf, line: usize, message: String },

    #[error("template error{}: {message}", context.as_deref().map(|c| format!(" in {c}")).unwrap_or_default())]
    TemplateFailed { message: String, context: Option<String> },

    #[error("{message}")]
    ArgumentInvalid { message: String },

    /// A file named on the command line or in a playbook that is not there.
    #[error("{message}")]
    FileMissing { message: String },

    #[error("not supported yet: {what}")]
    NotSupported { what: String },

    /// A role that is on no search path; `message` names the paths searched.
    #[error("{mark}: {message}")]
    RoleNotFound { mark: Mark, message: String },

    /// A vault envelope that could not be opened (no secret, wrong secret, bad data).
    #[error("{what}: {message}")]
    VaultFailed { what: String, message: String },

    #[error("{step}: {message}")]
    ImageFailed { step: String, message: String },

    #[error("{step}: {message}")]
    LabFailed { step: String, message: String },

    #[error("interrupted; everything mounted or attached was released")]
    Interrupted,
}

impl Error {
    /// A source quote to print under the message, when the error has a position.
    pub fn snippet(&self) -> Option<String> {
        match self {
            Error::YamlSyntax { mark, .. }
            | Error::PlaybookInvalid { mark, .. }
            | Error::RoleNotFound { mark, .. } => Some(mark.snippet()),
            _ => None,
        }
    }

    /// The source position and the bare message, for errors that have one.
    pub fn mark(&self) -> Option<(&Mark, &str)> {
        match self {
            Error::YamlSyntax { mark, message }
            | Error::PlaybookInvalid { mark, message }
            | Error::RoleNotFound { mark, message } => Some((mark, message)),
            _ => None,
        }
    }

    pub fn invalid(mark: &Mark, message: impl Into<String>) -> Error {
        Error::PlaybookInvalid { mark: mark.clone(), message: message.into() }
    }

    pub fn template(message: impl Into<String>) -> Error {
        Error::TemplateFailed { message: message.into(), context: None }
    }

    /// A failed step of `bramble bake` or `bramble burn`.
    pub fn image(step: impl Into<String>, message: impl Into<String>) -> Error {
        Error::ImageFailed { step: step.into(), message: message.into() }
    }

    /// A failed step of `bramble lab`.
    pub fn lab(step: impl Into<String>, message: impl Into<String>) -> Error {
        Error::LabFailed { step: step.into(), message: message.into() }
    }

    pub fn argument(message: impl Into<String>) -> Error {
        Error::ArgumentInvalid { message: message.into() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
