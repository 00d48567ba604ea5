//! Logging on stderr (text or JSON), with every line scrubbed of the database password.

use crate::config::LogFormat;
use std::io::Write;

/// Collects one log event and writes it to stderr, scrubbed, when the event is complete.
/// (The fmt layer writes each event through a fresh writer, so scrubbing sees whole lines
/// and a secret can never be split across two writes.)
#[derive(Default)]
struct ScrubbedStderr {
    buf: Vec<u8>,
}

impl Write for ScrubbedStderr {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ScrubbedStderr {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.buf);
        let _ = std::io::stderr().lock().write_all(crate::secrets::scrub(&text).as_bytes());
    }
}

/// Installs the global subscriber: `RUST_LOG` if set, else `default_level`.
pub fn init(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // Colours only for a person at a terminal: a log file or pipeline gets plain lines.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(ScrubbedStderr::default);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
