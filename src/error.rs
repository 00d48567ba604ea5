//! The one error type of scansync, and the single place that decides retry or fatal.
//!
//! Every failure carries a [`Kind`]; [`Error::is_retryable`] is the only function that decides
//! whether a page (or a checkpoint write) is tried again. Messages are lowercase, say what
//! failed and, where it helps, what to do. A database URL is never part of a message: use
//! [`crate::db::redact`] when one has to be shown (and every message is scrubbed of the
//! password anyway).

use std::fmt;

/// What went wrong, in the terms the retry policy needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A flag, a config value or an input path is wrong; the user must change something.
    Config,
    /// The connection to PostgreSQL was lost or refused, or the server is shutting down.
    Connection,
    /// PostgreSQL aborted the transaction to resolve a deadlock or a serialization conflict.
    Conflict,
    /// PostgreSQL rejected a statement for any other reason (constraint, data, syntax).
    Database,
    /// The DynamoDB or SSM API failed after the SDK's own retries.
    Aws,
    /// Another run holds the advisory lock of this sync target.
    Locked,
    /// This run lost its advisory lock (its connection died): it must stop, not retry.
    LockLost,
    /// Reading the export files failed.
    Io,
    /// A signal asked the run to stop (SIGTERM, SIGINT).
    Cancelled,
    /// Anything else: a broken invariant, a stage that stopped unexpectedly.
    Internal,
}

/// An error of scansync, with its [`Kind`] and a message fit for an operator.
#[derive(Debug)]
pub struct Error {
    kind: Kind,
    message: String,
}

/// The result type used throughout scansync.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Exit status: success.
pub const EXIT_OK: u8 = 0;
/// Exit status: the run failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit status: a flag, a setting or an input to correct; nothing was done.
pub const EXIT_CONFIG: u8 = 2;
/// Exit status: another run holds the lock (EX_TEMPFAIL); nothing was done.
pub const EXIT_LOCKED: u8 = 75;

impl Error {
    /// Creates an error of `kind` with a lowercase message.
    ///
    /// Every message passes through [`crate::secrets::scrub`]: a database password can never
    /// reach an operator through an error, whichever road it took into the message.
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        let message = message.into();
        let message = match crate::secrets::scrub(&message) {
            std::borrow::Cow::Borrowed(_) => message,
            std::borrow::Cow::Owned(s) => s,
        };
        Self { kind, message }
    }

    /// Creates a configuration error: the message should say what to change.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(Kind::Config, message)
    }

    /// Creates an internal error (a stage stopped or an invariant broke).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Kind::Internal, message)
    }

    /// Returns the kind of this error.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Returns the message without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefixes the message with what was being done, keeping the kind.
    pub fn context(self, what: impl fmt::Display) -> Self {
        Self::new(self.kind, format!("{what}: {}", self.message))
    }

    /// The exit status of a command that ends with this error before its run could start
    /// (a run that started reports its own outcome): 2 for what the user must correct, 75
    /// for a lock held elsewhere, else 1. A stopped run's status is its signal's
    /// ([`crate::shutdown::Stop::exit_code`]).
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            Kind::Config => EXIT_CONFIG,
            Kind::Locked => EXIT_LOCKED,
            _ => EXIT_FAILED,
        }
    }

    /// Tells whether the operation that failed may simply be tried again.
    ///
    /// Page transactions are idempotent, so connection loss, deadlocks (`40P01`) and
    /// serialization failures (`40001`) are retried; constraint and data errors are not,
    /// since a retry would fail the same way.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, Kind::Connection | Kind::Conflict)
    }

    /// Maps a PostgreSQL driver error to its kind; SQLSTATE classes decide.
    pub fn from_pg(err: tokio_postgres::Error) -> Self {
        let kind = match err.code() {
            Some(code) => classify_sqlstate(code.code()),
            // No SQLSTATE: the error happened on the wire (closed connection, io error).
            None if err.is_closed() || err.to_string().contains("connection") => Kind::Connection,
            None => Kind::Database,
        };
        let message = match err.as_db_error() {
            Some(db) => {
                let mut m = format!("postgres error {}: {}", db.code().code(), db.message());
                if let Some(detail) = db.detail() {
                    m.push_str(&format!(" ({detail})"));
                }
                m
            }
            None => {
                // The driver's Display omits the cause ("error connecting to server"): add it.
                let mut m = format!("postgres: {err}");
                let mut source = std::error::Error::source(&err);
                while let Some(s) = source {
                    m.push_str(&format!(": {s}"));
                    source = s.source();
                }
                m
            }
        };
        Self::new(kind, message)
    }
}

/// Classifies a SQLSTATE code into a [`Kind`].
///
/// `08…` (connection exception), `57P01`–`57P03` (admin shutdown, crash shutdown, cannot
/// connect now) and `53300` (too many connections) are connection problems; `40P01` and
/// `40001` are conflicts. Everything else is a database error that a retry will not cure.
pub fn classify_sqlstate(code: &str) -> Kind {
    match code {
        "40P01" | "40001" => Kind::Conflict,
        "57P01" | "57P02" | "57P03" | "53300" => Kind::Connection,
        c if c.starts_with("08") => Kind::Connection,
        _ => Kind::Database,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<tokio_postgres::Error> for Error {
    fn from(err: tokio_postgres::Error) -> Self {
        Self::from_pg(err)
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        Self::new(Kind::Io, err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlock_and_serialization_failures_are_retryable() {
        assert_eq!(classify_sqlstate("40P01"), Kind::Conflict);
        assert_eq!(classify_sqlstate("40001"), Kind::Conflict);
        assert!(Error::new(Kind::Conflict, "x").is_retryable());
    }

    #[test]
    fn connection_classes_are_retryable() {
        for code in ["08006", "08003", "57P01", "53300"] {
            assert_eq!(classify_sqlstate(code), Kind::Connection, "{code}");
        }
    }

    #[test]
    fn constraint_and_data_errors_are_fatal() {
        for code in ["23505", "23503", "22P02", "22021", "42P01"] {
            let kind = classify_sqlstate(code);
            assert_eq!(kind, Kind::Database, "{code}");
            assert!(!Error::new(kind, "x").is_retryable());
        }
    }
}
