//! The one error type of this crate: every failure names the file it came from and, where
//! the format allows, the record or line inside it, so that a bad feed entry can be found
//! and reported upstream.

use std::fmt;
use std::path::{Path, PathBuf};

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A feed file that could not be read or parsed, or a database operation that failed.
#[derive(Debug)]
pub struct Error {
    path: PathBuf,
    location: Option<String>,
    message: String,
    source: Option<Source>,
}

impl Error {
    /// An error in `path` (no position known).
    pub fn new(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Error {
            path: path.as_ref().to_path_buf(),
            location: None,
            message: message.into(),
            source: None,
        }
    }

    /// An error in `path` caused by `source` (an I/O, JSON, YAML, zip or SQLite error).
    pub fn with_source(
        path: impl AsRef<Path>,
        message: impl Into<String>,
        source: impl Into<Source>,
    ) -> Self {
        Error {
            source: Some(source.into()),
            ..Error::new(path, message)
        }
    }

    /// Adds the position inside the file: a record id, an array index, a line number or a
    /// zip entry name.
    #[must_use]
    pub fn at(mut self, location: impl Into<String>) -> Self {
        let location = location.into();
        self.location = Some(match self.location.take() {
            // An outer position (zip entry) is more useful first, the inner one (line) next.
            Some(inner) => format!("{location}, {inner}"),
            None => location,
        });
        self
    }

    /// The file (feed file, archive or database) the error is about.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where in the file, if known.
    pub fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }

    /// What went wrong, without the path.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(location) = &self.location {
            write!(f, " ({location})")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
