//! Secrets never shown: the registry of every string that may be a database password, the
//! scrub that masks them in any text, and the textual forms a password takes inside a
//! connection string.
//!
//! A password can reach a message by many roads (a driver error that quotes the connection
//! string, a URL the driver cannot parse, a log line). So every string that may be the
//! password is registered ([`register`], [`register_connection_string`]) before anything can
//! print, and every [`crate::Error`] message and every log line passes through [`scrub`].
//! This module is a leaf: `error`, `logging`, `tls` and `db` build on it. (The form the
//! PostgreSQL driver parses out of a string is registered by `db`, which owns the driver.)

use std::borrow::Cow;
use std::sync::RwLock;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Every secret registered so far, longest first (so a secret that contains another is
/// masked whole).
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Records one secret (a password from `PGPASSWORD`, say), so [`scrub`] masks it.
pub fn register(secret: &str) {
    register_all([secret.to_string()]);
}

fn register_all(found: impl IntoIterator<Item = String>) {
    let found: Vec<String> = found.into_iter().filter(|s| !s.is_empty()).collect();
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

/// Records every textual form the password of a connection string may take inside a
/// message: for URLs and key=value strings, the raw, percent-decoded and quoted forms of
/// what a person may have meant, also when no parser would accept the string (an
/// unencoded `/`, `?` or `@` in a URL password).
pub fn register_connection_string(conn: &str) {
    register_all(textual_passwords(conn));
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

/// Decodes `%XX` escapes (invalid UTF-8 replaced); anything else is kept as it is.
pub fn percent_decode(s: &str) -> String {
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

/// The password forms of a URL (userinfo and `password=` query values) or of a key=value
/// string.
fn textual_passwords(conn: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some((_, rest)) = conn.split_once("://") {
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
        out.extend(key_value_passwords(conn));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_textual_form_of_a_password_is_masked() {
        for (conn, secret) in [
            ("postgres://u:Corr3ct/Horse@host/db", "Corr3ct/Horse"),
            ("postgres://u:Wh0?Knows@host/db", "Wh0?Knows"),
            ("postgres://u:At@Sign@host/db", "At@Sign"),
            ("postgres://u:Pct%2FEnc@host/db", "Pct/Enc"),
            ("postgres://app@db/x?password=s3cretC", "s3cretC"),
            ("host=db password='Sec ret' dbname=x", "Sec ret"),
            ("host=db password='it\\'s' dbname=x", "it's"),
            ("host=db user=app password = Secret9 dbname=x", "Secret9"),
        ] {
            register_connection_string(conn);
            let msg = format!("error with {conn}: bad password {secret}");
            assert!(!scrub(&msg).contains(secret), "{conn}: {}", scrub(&msg));
        }
    }

    #[test]
    fn percent_escapes_decode_and_the_rest_stays() {
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
    }
}
