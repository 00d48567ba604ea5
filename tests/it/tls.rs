//! TLS to PostgreSQL through the real binary, against a throwaway cluster of the test's own
//! that accepts only TLS connections with a password (certificates made at test time with
//! openssl; the machine's shared cluster is never touched).

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const PASSWORD: &str = "s3cr3t-Tls-pw";

fn openssl(dir: &Path, args: &[&str]) {
    let out =
        Command::new("openssl").args(args).current_dir(dir).output().expect("openssl (Debian's openssl)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA, a server certificate it signed (for localhost only), and another CA.
fn certificates(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let ca = [
        &["req", "-x509"][..],
        &ec,
        &["-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=scansync test CA"],
    ]
    .concat();
    openssl(dir, &ca);
    let other = [
        &["req", "-x509"][..],
        &ec,
        &["-keyout", "other.key", "-out", "other.crt", "-days", "2", "-subj", "/CN=another CA"],
    ]
    .concat();
    openssl(dir, &other);
    let csr = [&["req"][..], &ec, &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]]
        .concat();
    openssl(dir, &csr);
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
}

/// A cluster that accepts only TLS connections, with a password.
fn tls_cluster() -> (Cluster, PathBuf) {
    let certs = std::env::temp_dir().join(format!("scansync-test-certs-{}", unique()));
    std::fs::create_dir_all(&certs).unwrap();
    certificates(&certs);
    let cluster = Cluster::start_with(|data| {
        for f in ["server.crt", "server.key"] {
            std::fs::copy(certs.join(f), data.join(f)).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data.join("server.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        conf.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\npassword_encryption = 'scram-sha-256'\n");
        std::fs::write(data.join("postgresql.conf"), conf).unwrap();
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
    });
    cluster.psql(&format!("alter user postgres password '{PASSWORD}'"));
    (cluster, certs)
}

fn url(c: &Cluster, host: &str, query: &str) -> String {
    format!("postgres://postgres:{PASSWORD}@{host}:{}/postgres?{query}", c.port)
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_only_server_is_synced_over_require_and_plain_tcp_is_refused_with_what_to_set() {
    let (c, certs) = tls_cluster();
    let out = scansync_url(&url(&c, "127.0.0.1", "sslmode=require"), &["demo"], &[]).await;
    assert_exit(&out, 0);
    assert!(!text(&out).contains(PASSWORD));
    // The default (prefer) negotiates TLS as well.
    assert_exit(&scansync_url(&url(&c, "127.0.0.1", ""), &["migrate"], &[]).await, 0);
    let out = scansync_url(&url(&c, "127.0.0.1", "sslmode=disable"), &["migrate"], &[]).await;
    assert_exit(&out, 1);
    let t = text(&out);
    assert!(t.contains("no encryption") && t.contains("use sslmode=require"), "{t}");
    assert!(!t.contains(PASSWORD), "{t}");
    std::fs::remove_dir_all(certs).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_full_accepts_the_servers_ca_and_fails_clearly_with_another() {
    let (c, certs) = tls_cluster();
    let ca = certs.join("ca.crt");
    let good = url(&c, "localhost", &format!("sslmode=verify-full&sslrootcert={}", ca.display()));
    assert_exit(&scansync_url(&good, &["migrate"], &[]).await, 0);
    let other = url(
        &c,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", certs.join("other.crt").display()),
    );
    let out = scansync_url(&other, &["migrate"], &[]).await;
    assert_exit(&out, 1);
    let t = text(&out);
    assert!(t.contains("sslmode=verify-full") && t.contains("not signed by a CA of sslrootcert"), "{t}");
    assert!(!t.contains(PASSWORD), "{t}");
    // The certificate is for localhost only: verify-full refuses it at 127.0.0.1 (the name
    // does not match); verify-ca (here from PGSSLMODE / PGSSLROOTCERT) checks only the chain.
    let by_ip = url(&c, "127.0.0.1", &format!("sslmode=verify-full&sslrootcert={}", ca.display()));
    let out = scansync_url(&by_ip, &["migrate"], &[]).await;
    assert_exit(&out, 1);
    assert!(text(&out).contains("not issued for the host"), "{}", text(&out));
    let out = scansync_url(
        &format!("postgres://postgres:{PASSWORD}@127.0.0.1:{}/postgres", c.port),
        &["migrate"],
        &[("PGSSLMODE", "verify-ca".into()), ("PGSSLROOTCERT", ca.display().to_string())],
    )
    .await;
    assert_exit(&out, 0);
    let out = scansync_url(&url(&c, "localhost", "sslmode=verify-full"), &["migrate"], &[]).await;
    // A URL to correct, refused before anything is done.
    assert_exit(&out, 2);
    assert!(text(&out).contains("needs the CA that signed it: add sslrootcert="), "{}", text(&out));
    std::fs::remove_dir_all(certs).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_password_may_come_from_pgpassword_or_a_url_file_and_is_never_shown() {
    let (c, certs) = tls_cluster();
    let no_password = format!("postgres://postgres@127.0.0.1:{}/postgres?sslmode=require", c.port);
    let out = scansync_url(&no_password, &["migrate"], &[("PGPASSWORD", PASSWORD.into())]).await;
    assert_exit(&out, 0);
    // A URL in a file (a mounted secret): not in the environment, not in the process list.
    let file = certs.join("database-url");
    std::fs::write(&file, format!("{}\n", url(&c, "127.0.0.1", "sslmode=require"))).unwrap();
    let out = scansync_url(
        "postgres://nobody@127.0.0.1:1/none",
        &["migrate"],
        &[("DATABASE_URL_FILE", file.display().to_string())],
    )
    .await;
    assert_exit(&out, 0);
    // A failure through the file shows the target, never the password.
    std::fs::write(&file, format!("{}\n", url(&c, "127.0.0.1", "sslmode=disable"))).unwrap();
    let out = scansync_url(
        "postgres://nobody@127.0.0.1:1/none",
        &["migrate"],
        &[("DATABASE_URL_FILE", file.display().to_string())],
    )
    .await;
    assert_exit(&out, 1);
    let t = text(&out);
    assert!(t.contains(&format!("postgres://postgres@127.0.0.1:{}/postgres", c.port)), "{t}");
    assert!(!t.contains(PASSWORD), "{t}");
    std::fs::remove_dir_all(certs).unwrap();
}
