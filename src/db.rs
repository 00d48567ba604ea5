//! Connecting to PostgreSQL without ever showing the password.
//!
//! Two defences, because a password can reach a message by many roads (a driver error that
//! quotes the connection string, a URL the driver cannot parse, a log line):
//! - [`redact`] never prints a connection string as given: it rebuilds a display form from
//!   what the driver parsed (user, hosts, ports, database), which has no password field;
//!   a string the driver cannot parse is not shown at all.
//! - [`register_secrets`] records every string that may be the password (what the driver
//!   parsed, and what a person may have meant in a string it cannot parse, percent-encoded
//!   or quoted), and [`scrub`] replaces them in any text. Every [`crate::Error`] message
//!   and every log line passes through [`scrub`].

use crate::error::{Error, Kind, Result};
use std::borrow::Cow;
use std::str::FromStr;
use std::sync::RwLock;
use tokio_postgres::{Client, Config, NoTls};

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Every secret registered so far, longest first (so a secret that contains another is
/// masked whole).
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Opens a connection and drives it on the tokio runtime.
///
/// Errors name the target with the password redacted, and say what to check.
pub async fn connect(url: &str) -> Result<Client> {
    register_secrets(url);
    let (rest, tls) = crate::tls::split(url)?;
    let mut cfg = Config::from_str(&rest).map_err(|e| {
        Error::config(format!(
            "cannot use the database URL {}: {}; check --database-url / DATABASE_URL",
            redact(url),
            scrub(&e.to_string())
        ))
    })?;
    if cfg.get_password().is_none() {
        if let Some(p) = std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty()) {
            register_secret(&p);
            cfg.password(p);
        }
    }
    cfg.ssl_mode(crate::tls::driver_mode(&tls));
    let fail = |e: tokio_postgres::Error| {
        let base = Error::from_pg(e);
        let kind = if base.kind() == Kind::Database { Kind::Connection } else { base.kind() };
        Error::new(
            kind,
            format!(
                "cannot connect to {} (sslmode={}): {}{}; check --database-url / DATABASE_URL and that the server is up",
                redact(url),
                tls.mode.as_str(),
                base.message(),
                tls_hint(base.message(), tls.mode)
            ),
        )
    };
    let client = match crate::tls::connector(&tls)? {
        None => {
            let (client, connection) = cfg.connect(NoTls).await.map_err(fail)?;
            tokio::spawn(drive(connection));
            client
        }
        Some(connector) => {
            let (client, connection) = cfg.connect(connector).await.map_err(fail)?;
            tokio::spawn(drive(connection));
            client
        }
    };
    Ok(client)
}

async fn drive<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, "postgres connection closed");
    }
}

/// What to check when a connection failed in its TLS step.
fn tls_hint(message: &str, mode: crate::tls::SslMode) -> &'static str {
    use crate::tls::SslMode;
    let m = message.to_ascii_lowercase();
    if m.contains("does not support tls") || m.contains("server does not support ssl") {
        "; the server does not offer TLS: enable ssl on the server, or use sslmode=prefer/disable"
    } else if (m.contains("certificate") || m.contains("tls") || m.contains("handshake"))
        && matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull | SslMode::Require)
    {
        if mode == SslMode::VerifyFull {
            "; the server's certificate is not signed by a CA of sslrootcert, or not issued for the host connected to: check sslrootcert and the host name"
        } else {
            "; the server's certificate is not signed by a CA of sslrootcert: check sslrootcert"
        }
    } else if m.contains("no encryption") || m.contains("pg_hba.conf") && m.contains("ssl off") {
        "; the server accepts only encrypted connections: use sslmode=require (or verify-full)"
    } else {
        ""
    }
}

/// Returns a connection string fit for logs and messages: `postgres://user@host:port/db`
/// rebuilt from what the driver parsed (so no password, whatever the input form), or a
/// placeholder when the driver cannot parse it.
pub fn redact(url: &str) -> String {
    let stripped = crate::tls::split(url).map(|(rest, _)| rest).unwrap_or_else(|_| url.to_string());
    let Ok(cfg) = Config::from_str(&stripped) else {
        return "<the database URL (not shown: it does not parse as a PostgreSQL connection string)>".into();
    };
    let user = cfg.get_user().map(|u| format!("{u}@")).unwrap_or_default();
    let hosts: Vec<String> = cfg
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            };
            match cfg.get_ports().get(i).or(cfg.get_ports().first()) {
                Some(p) => format!("{host}:{p}"),
                None => host,
            }
        })
        .collect();
    let db = cfg.get_dbname().map(|d| format!("/{d}")).unwrap_or_default();
    scrub(&format!("postgres://{user}{}{db}", hosts.join(","))).into_owned()
}

/// Records one secret (a password from `PGPASSWORD`, say), so [`scrub`] masks it.
pub fn register_secret(secret: &str) {
    if secret.is_empty() {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !secrets.iter().any(|s| s == secret) {
        secrets.push(secret.to_string());
    }
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Records the strings that may be the password of `url`, so [`scrub`] masks them.
pub fn register_secrets(url: &str) {
    let mut found = password_candidates(url);
    found.retain(|s| !s.is_empty());
    if found.is_empty() {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    for s in found {
        if !secrets.contains(&s) {
            secrets.push(s);
        }
    }
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Replaces every registered secret in `text` with [`MASK`].
pub fn scrub(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = Cow::Borrowed(text);
    for s in secrets.iter() {
        if out.contains(s.as_str()) {
            out = Cow::Owned(out.replace(s.as_str(), MASK));
        }
    }
    out
}

/// Every string that may be the password of a connection string, in every form it may
/// take inside a message: what the driver parsed, and for URLs and key=value strings the
/// raw, percent-decoded and quoted forms of what a person may have meant (also when the
/// driver cannot parse the string: an unencoded `/`, `?` or `@` in a URL password).
fn password_candidates(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    let stripped = crate::tls::split(url).map(|(rest, _)| rest).unwrap_or_else(|_| url.to_string());
    if let Ok(cfg) = Config::from_str(&stripped) {
        if let Some(p) = cfg.get_password() {
            out.push(String::from_utf8_lossy(p).into_owned());
        }
    }
    if let Some((_, rest)) = url.split_once("://") {
        // The userinfo ends at an '@'; with unencoded '@', '/' or '?' in the password it is
        // not clear which one, so every '@' is tried.
        for (at, _) in rest.match_indices('@') {
            if let Some((_, pw)) = rest[..at].split_once(':') {
                out.push(pw.to_owned());
                out.push(percent_decode(pw));
            }
        }
        if let Some((_, query)) = rest.split_once('?') {
            for kv in query.split('&') {
                if let Some((k, v)) = kv.split_once('=') {
                    if k.eq_ignore_ascii_case("password") {
                        out.push(v.to_owned());
                        out.push(percent_decode(v));
                    }
                }
            }
        }
    } else {
        out.extend(key_value_passwords(url));
    }
    out
}

/// The `password` values of a key=value connection string (`password = x`,
/// `password='a b\'c'`), raw and unescaped.
fn key_value_passwords(s: &str) -> Vec<String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let key_start = i;
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &s[key_start..i];
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            // Not a key=value pair: whatever it is, it may be a stray password.
            if key.is_empty() {
                break;
            }
            continue;
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let value_start = i;
        let mut value = String::new();
        if i < b.len() && b[i] == b'\'' {
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
                value.push(ch);
                i += ch.len_utf8();
            }
            i = (i + 1).min(b.len());
        } else {
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            value.push_str(&s[value_start..i]);
        }
        if key.eq_ignore_ascii_case("password") {
            out.push(s[value_start..i].to_owned());
            out.push(s[value_start..i].trim_matches('\'').to_owned());
            out.push(value);
        }
    }
    out
}

pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() {
            let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            out.push(hex(b[i + 1]) * 16 + hex(b[i + 2]));
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(url: &str, secret: &str) {
        register_secrets(url);
        let r = redact(url);
        assert!(!r.contains(secret), "redact({url}) = {r}");
        let msg = format!("error connecting with {url}: bad password {secret}");
        let s = scrub(&msg);
        assert!(!s.contains(secret), "scrub left {secret} in {s}");
    }

    #[test]
    fn passwords_never_survive_redaction_in_any_connection_string_form() {
        for (url, secret) in [
            ("postgres://app:s3cretA@db:5432/x", "s3cretA"),
            ("postgresql://app:s3cretB@db/x?sslmode=require", "s3cretB"),
            ("postgres://app@db/x?password=s3cretC", "s3cretC"),
            ("postgres://u:Corr3ct/Horse@host/db", "Corr3ct/Horse"),
            ("postgres://u:Wh0?Knows@host/db", "Wh0?Knows"),
            ("postgres://u:At@Sign@host/db", "At@Sign"),
            ("postgres://u:Pct%2FEnc@host/db", "Pct/Enc"),
            ("postgres://u:Pct%2FEnc2@host/db", "Pct%2FEnc2"),
            ("host=db user=app password=s3cretD dbname=x", "s3cretD"),
            ("host=db user=app password = Secret9 dbname=x", "Secret9"),
            ("host=db password='Sec ret' dbname=x", "Sec ret"),
            ("host=db password='it\\'s' dbname=x", "it's"),
        ] {
            masked(url, secret);
        }
    }

    #[test]
    fn redacted_urls_keep_what_an_operator_needs() {
        assert_eq!(
            redact("postgres://postgres@127.0.0.1:5432/postgres"),
            "postgres://postgres@127.0.0.1:5432/postgres"
        );
        assert_eq!(redact("host=db port=5433 user=app password=zz9zz dbname=x"), "postgres://app@db:5433/x");
        assert_eq!(redact("postgres://u:Corr3ct/Horse@host/db"), "postgres://u@host:5432/db");
        assert!(redact("postgres://u:x@h:notaport/db").contains("not shown"));
    }
}
