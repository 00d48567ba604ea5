//! Connecting to PostgreSQL without ever showing the password, and never waiting forever.
//!
//! Two defences, because a password can reach a message by many roads (a driver error that
//! quotes the connection string, a URL the driver cannot parse, a log line):
//! - [`redact`] never prints a connection string as given: it rebuilds a display form from
//!   what the driver parsed (user, hosts, ports, database), which has no password field;
//!   a string the driver cannot parse is not shown at all.
//! - [`register_secrets`] records every string that may be the password (what the driver
//!   parsed, and the textual forms [`crate::secrets`] finds), which [`crate::secrets::scrub`]
//!   then masks in every message and log line.
//!
//! Every connection has a connect timeout ([`CONNECT_TIMEOUT`] unless the URL says
//! `connect_timeout`): a server that does not answer fails the attempt, so retries and
//! probes stay bounded.

use crate::error::{Error, Kind, Result};
use crate::secrets::{self, scrub};
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::{Client, Config, NoTls};

/// How long a connection attempt may take when the URL sets no `connect_timeout`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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
            secrets::register(&p);
            cfg.password(p);
        }
    }
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(CONNECT_TIMEOUT);
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

/// Registers every string that may be the password of `url` ([`crate::secrets`]): its
/// textual forms, and what the driver parses out of it.
pub fn register_secrets(url: &str) {
    secrets::register_connection_string(url);
    let stripped = crate::tls::split(url).map(|(rest, _)| rest).unwrap_or_else(|_| url.to_string());
    if let Some(p) = Config::from_str(&stripped).ok().and_then(|c| c.get_password().map(<[u8]>::to_vec)) {
        secrets::register(&String::from_utf8_lossy(&p));
    }
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
