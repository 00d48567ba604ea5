//! A throwaway PostgreSQL cluster of the harness's own: its own data directory and port, so
//! restarts and outages never touch the machine's shared cluster. `initdb` refuses root,
//! so the cluster runs as the `postgres` OS user when the harness runs as root.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running throwaway cluster; stopped and deleted when dropped.
pub struct Cluster {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    dir: PathBuf,
}

fn pg_bin(tool: &str) -> Result<String, String> {
    let version = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("PostgreSQL server binaries under /usr/lib/postgresql: {e}"))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .max()
        .ok_or("no PostgreSQL version under /usr/lib/postgresql")?;
    Ok(format!("/usr/lib/postgresql/{version}/bin/{tool}"))
}

fn sh(cmd: &str) -> Result<(), String> {
    // `initdb` refuses to run as root: run as the postgres user when we are root.
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false);
    let out = if root {
        Command::new("su").args(["postgres", "-s", "/bin/bash", "-c", cmd]).output()
    } else {
        Command::new("bash").args(["-c", cmd]).output()
    }
    .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl Cluster {
    /// Creates and starts a cluster (trust auth, fsync off) under `parent`.
    pub fn start(parent: &Path) -> Result<Self, String> {
        let dir = parent.join(format!("cluster-{}-{}", std::process::id(), fastrand::u32(..)));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        // The cluster runs as the postgres user, who must be able to reach its directory.
        if let Some(p) = parent.to_str() {
            let _ = Command::new("chmod").args(["a+x", p]).status();
        }
        let _ = Command::new("chown").args(["postgres:postgres", &dir.display().to_string()]).status();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        sh(&format!(
            "{} -D {}/data -U postgres --auth=trust -N >/dev/null",
            pg_bin("initdb")?,
            dir.display()
        ))?;
        let c = Cluster { port, dir };
        c.ctl("start")?;
        Ok(c)
    }

    fn ctl(&self, action: &str) -> Result<(), String> {
        let d = self.dir.display();
        let opts = format!(
            "-p {} -k {d} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port
        );
        sh(&format!(
            "{} -D {d}/data -o '{opts}' -l {d}/log -w -m fast {action} >/dev/null",
            pg_bin("pg_ctl")?
        ))
    }

    /// Restarts the server (fast shutdown: every session is cut).
    pub fn restart(&self) -> Result<(), String> {
        self.ctl("restart")
    }

    /// Stops the server.
    pub fn stop(&self) -> Result<(), String> {
        self.ctl("stop")
    }

    /// Starts it again after [`Cluster::stop`].
    pub fn resume(&self) -> Result<(), String> {
        self.ctl("start")
    }

    /// Returns the URL of database `db`, through `port` (the cluster's, or a proxy's).
    pub fn url(&self, port: u16, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/{db}")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Ok(bin) = pg_bin("pg_ctl") {
            let _ = sh(&format!("{bin} -D {}/data -m immediate stop >/dev/null 2>&1", self.dir.display()));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
