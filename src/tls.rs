//! TLS to PostgreSQL, with libpq's `sslmode` and `sslrootcert` (from the URL, or
//! `PGSSLMODE` / `PGSSLROOTCERT`), on rustls.
//!
//! | sslmode | encrypted | server certificate checked |
//! |---|---|---|
//! | `disable` | no | — |
//! | `prefer` (the default, as libpq's) | if the server offers it | no |
//! | `require` | yes, or the connection fails | no (as `verify-ca` when a root certificate is given) |
//! | `verify-ca` | yes | signed by `sslrootcert` |
//! | `verify-full` | yes | signed by `sslrootcert` and issued for the host connected to |
//!
//! `sslrootcert` is a PEM file of CA certificates, or `system` for the operating system's
//! trust store; without it, `~/.postgresql/root.crt` is used when it exists (as libpq does).

use crate::error::{Error, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::PathBuf;
use std::sync::Arc;

/// How a connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, without checking its certificate.
    Prefer,
    /// TLS or fail, without checking the certificate.
    Require,
    /// TLS, the certificate signed by a trusted CA.
    VerifyCa,
    /// TLS, the certificate signed by a trusted CA and issued for the host.
    VerifyFull,
}

impl SslMode {
    /// Parses libpq's names.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::config(format!(
                    "sslmode={other:?} is not a mode: use disable, prefer, require, verify-ca or verify-full"
                )))
            }
        })
    }

    /// Returns libpq's name.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// The TLS settings of a connection string, taken out of it (the driver does not know
/// `verify-ca`, `verify-full` or `sslrootcert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The mode.
    pub mode: SslMode,
    /// The CA certificates: a PEM file, or `system`.
    pub root_cert: Option<String>,
}

/// Splits a connection string (URL or key=value form) into the string the driver parses
/// (without `sslmode`/`sslrootcert`) and the TLS settings, completed from `PGSSLMODE` and
/// `PGSSLROOTCERT`.
pub fn split(conn: &str) -> Result<(String, TlsSettings)> {
    let (mut mode, mut root) = (None, None);
    let rest = if conn.starts_with("postgres://") || conn.starts_with("postgresql://") {
        match conn.split_once('?') {
            None => conn.to_string(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    match k {
                        "sslmode" => mode = Some(crate::secrets::percent_decode(v)),
                        "sslrootcert" => root = Some(crate::secrets::percent_decode(v)),
                        _ => kept.push(pair),
                    }
                }
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for token in conn.split_whitespace() {
            match token.split_once('=') {
                Some(("sslmode", v)) => mode = Some(v.trim_matches('\'').to_string()),
                Some(("sslrootcert", v)) => root = Some(v.trim_matches('\'').to_string()),
                _ => kept.push(token),
            }
        }
        kept.join(" ")
    };
    let mode = mode.or_else(|| std::env::var("PGSSLMODE").ok()).filter(|m| !m.is_empty());
    let root = root.or_else(|| std::env::var("PGSSLROOTCERT").ok()).filter(|r| !r.is_empty());
    let mode = mode.as_deref().map(SslMode::parse).transpose()?.unwrap_or(SslMode::Prefer);
    Ok((rest, TlsSettings { mode, root_cert: root }))
}

/// The driver's mode for these settings: checking happens in the rustls verifier.
pub fn driver_mode(s: &TlsSettings) -> tokio_postgres::config::SslMode {
    match s.mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    }
}

/// Builds the rustls connector for these settings (None: `disable`).
pub fn connector(s: &TlsSettings) -> Result<Option<tokio_postgres_rustls::MakeRustlsConnect>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = match (s.mode, roots(s)?) {
        (SslMode::Disable, _) => return Ok(None),
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            return Err(Error::config(format!(
                "sslmode={} checks the server's certificate, so it needs the CA that signed it: add sslrootcert=/path/to/ca.pem to the URL (or PGSSLROOTCERT; sslrootcert=system for the system's trust store)",
                s.mode.as_str()
            )))
        }
        (_, r) => r,
    };
    let verifier: Arc<dyn ServerCertVerifier> = match (s.mode, roots) {
        (SslMode::VerifyFull, Some(r)) => webpki(r, &provider)?,
        // libpq: `require` with a root certificate checks the chain like verify-ca.
        (SslMode::VerifyCa | SslMode::Require, Some(r)) => Arc::new(ChainOnly(webpki(r, &provider)?)),
        _ => Arc::new(NoCheck(provider.clone())),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::internal(format!("TLS setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Some(tokio_postgres_rustls::MakeRustlsConnect::new(config)))
}

fn webpki(roots: RootCertStore, provider: &Arc<CryptoProvider>) -> Result<Arc<WebPkiServerVerifier>> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| Error::config(format!("the CA certificates of sslrootcert cannot be used: {e}")))
}

/// The CA certificates the settings name: a PEM file, the system's store, or libpq's
/// default file when it exists.
fn roots(s: &TlsSettings) -> Result<Option<RootCertStore>> {
    let mut store = RootCertStore::empty();
    let path = match s.root_cert.as_deref() {
        Some("system") => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = store.add(c);
            }
            if store.is_empty() {
                return Err(Error::config(
                    "sslrootcert=system, but the system's trust store has no certificates",
                ));
            }
            return Ok(Some(store));
        }
        Some(p) => PathBuf::from(p),
        None => match std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".postgresql/root.crt")) {
            Some(p) if p.is_file() => p,
            _ => return Ok(None),
        },
    };
    let pem = std::fs::read(&path).map_err(|e| {
        Error::config(format!(
            "cannot read sslrootcert {}: {e}; give a PEM file of CA certificates",
            path.display()
        ))
    })?;
    let mut n = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert: CertificateDer<'static> = cert.map_err(|e| {
            Error::config(format!("sslrootcert {} is not a PEM file of certificates: {e}", path.display()))
        })?;
        store.add(cert).map_err(|e| {
            Error::config(format!("sslrootcert {}: a certificate cannot be used: {e}", path.display()))
        })?;
        n += 1;
    }
    if n == 0 {
        return Err(Error::config(format!("sslrootcert {} holds no PEM certificate", path.display())));
    }
    Ok(Some(store))
}

/// `prefer` and `require` without a root certificate: encryption only, as libpq does.
#[derive(Debug)]
struct NoCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted CA; the name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_settings_come_out_of_the_url_and_the_rest_is_left_to_the_driver() {
        let (rest, s) = split(
            "postgres://u:p@db:5432/x?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&application_name=a",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:p@db:5432/x?application_name=a");
        assert_eq!(s, TlsSettings { mode: SslMode::VerifyFull, root_cert: Some("/tmp/ca.pem".into()) });
        let (rest, s) = split("host=db user=u sslmode=require dbname=x").unwrap();
        assert_eq!(rest, "host=db user=u dbname=x");
        assert_eq!(s.mode, SslMode::Require);
    }

    #[test]
    fn an_unknown_sslmode_says_which_modes_exist() {
        let e = split("postgres://db/x?sslmode=verify").unwrap_err();
        assert!(e.to_string().contains("verify-full"), "{e}");
    }

    #[test]
    fn verify_full_without_a_root_certificate_says_what_to_add() {
        let s = TlsSettings { mode: SslMode::VerifyFull, root_cert: Some("/nonexistent/ca.pem".into()) };
        let e = connector(&s).err().unwrap();
        assert!(e.to_string().contains("cannot read sslrootcert /nonexistent/ca.pem"), "{e}");
    }
}
