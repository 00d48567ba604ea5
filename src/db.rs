//! Connecting to PostgreSQL without ever showing the password.

use crate::error::{Error, Kind, Result};
use tokio_postgres::{Client, NoTls};

/// Opens a connection and drives it on the tokio runtime.
///
/// Errors name the target with the password redacted, and say what to check.
pub async fn connect(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(|e| {
        let base = Error::from_pg(e);
        let kind = if base.kind() == Kind::Database { Kind::Connection } else { base.kind() };
        Error::new(
            kind,
            format!(
                "cannot connect to {}: {}; check --database-url / DATABASE_URL and that the server is up",
                redact(url),
                base.message()
            ),
        )
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgres connection closed");
        }
    });
    Ok(client)
}

/// Returns a database URL (or key=value connection string) with any password replaced
/// by `***`, fit for logs and error messages.
pub fn redact(url: &str) -> String {
    if let Some(rest) = url.split_once("://") {
        let (scheme, rest) = rest;
        let (auth_end, _) =
            rest.char_indices().find(|(_, c)| *c == '/' || *c == '?').unwrap_or((rest.len(), ' '));
        let (authority, tail) = rest.split_at(auth_end);
        let authority = match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***@{host}"),
                None => format!("{userinfo}@{host}"),
            },
            None => authority.to_owned(),
        };
        // A password can also hide in the query string.
        let tail = redact_query_password(tail);
        return format!("{scheme}://{authority}{tail}");
    }
    url.split_whitespace()
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn redact_query_password(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let q: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_owned(),
        })
        .collect();
    format!("{path}?{}", q.join("&"))
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_survive_redaction() {
        for url in [
            "postgres://app:s3cret@db:5432/x",
            "postgresql://app:s3cret@db/x?sslmode=require",
            "postgres://app@db/x?password=s3cret",
            "host=db user=app password=s3cret dbname=x",
        ] {
            let r = redact(url);
            assert!(!r.contains("s3cret"), "{r}");
            assert!(r.contains("db"), "{r}");
        }
        assert_eq!(
            redact("postgres://postgres@127.0.0.1:5432/postgres"),
            "postgres://postgres@127.0.0.1:5432/postgres"
        );
    }
}
