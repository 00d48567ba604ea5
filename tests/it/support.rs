//! The integration harness: a fresh PostgreSQL database per test, a fresh DynamoDB table
//! per test on dynalite, moto for SSM, and the real `scansync` binary.
//!
//! `scripts/test` starts the servers and exports their addresses; running `cargo test`
//! without it fails here with a message saying so.

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ProvisionedThroughput, PutRequest, ScalarAttributeType, WriteRequest,
};
use scansync::attr::sdk::to_sdk;
use scansync::attr::{Attr, Item};
use scansync::time::Timestamp;
use std::process::Output;
use tokio_postgres::{Client, NoTls};

/// The GSI name the tests create (the CLI default).
pub const INDEX: &str = "datePartition-updatedAt-index";

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with scripts/test, which starts dynalite and moto")
    })
}

/// Returns a short unique suffix for names.
pub fn unique() -> String {
    format!("{}_{:08x}", std::process::id(), fastrand::u32(..))
}

/// A fresh database, dropped when the value is dropped.
pub struct TestDb {
    /// Its URL.
    pub url: String,
    /// Its name.
    pub name: String,
    admin_url: String,
}

impl TestDb {
    /// Creates an empty database.
    pub async fn new() -> Self {
        Self::create("").await
    }

    /// Creates an empty database whose default collation is ICU's `en-US` (what managed
    /// services default to): there `'scan-a' < 'scan-B'`, unlike byte order.
    pub async fn new_icu() -> Self {
        Self::create(" template template0 locale_provider icu icu_locale 'en-US' locale 'C.UTF-8'").await
    }

    async fn create(options: &str) -> Self {
        let admin_url = env("SCANSYNC_TEST_DATABASE_URL");
        let name = format!("scansync_test_{}", unique());
        let admin = connect(&admin_url).await;
        admin.batch_execute(&format!("create database {name}{options}")).await.expect("create database");
        let base = admin_url.rsplit_once('/').expect("database url has a path").0;
        TestDb { url: format!("{base}/{name}"), name, admin_url }
    }

    /// Opens a connection to the database.
    pub async fn client(&self) -> Client {
        connect(&self.url).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime: clean up on a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let admin = connect(&admin_url).await;
                let _ = admin.batch_execute(&format!("drop database if exists {name} with (force)")).await;
            });
        })
        .join();
    }
}

/// Connects to PostgreSQL.
/// Connects to PostgreSQL. Sessions use UTC, so timestamps read back as text do not depend
/// on the server's time zone setting.
pub async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect to postgres");
    tokio::spawn(conn);
    client.batch_execute("set timezone = 'UTC'").await.expect("set the session time zone");
    client
}

fn sdk_config(endpoint: &str) -> aws_sdk_dynamodb::Config {
    aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .build()
}

/// A fresh table holding `n` one-version records (posts `p0`…, scans `s0`…) updated an
/// hour ago: inside the first run's window.
pub async fn recent_table(n: usize) -> Table {
    let table = Table::new().await;
    let items: Vec<_> =
        (0..n).map(|i| record(&format!("p{i}"), &format!("s{i}"), &hours_ago(1.0), "x")).collect();
    table.put(&items).await;
    table
}

/// A DynamoDB table with the date-partition GSI: on dynalite, or on DynamoDB Local with a
/// stream.
pub struct Table {
    /// The table name.
    pub name: String,
    /// A client for loading items.
    pub client: aws_sdk_dynamodb::Client,
    /// The server's endpoint.
    pub endpoint: String,
}

impl Table {
    /// Creates a fresh table on dynalite.
    pub async fn new() -> Self {
        Self::create(&env("SCANSYNC_TEST_DYNAMODB_URL"), None).await
    }

    /// Creates a fresh table on AWS's DynamoDB Local, with a stream of `view` (None: no
    /// stream).
    pub async fn streamed(view: Option<aws_sdk_dynamodb::types::StreamViewType>) -> Self {
        Self::create(&env("SCANSYNC_TEST_DDBLOCAL_URL"), view).await
    }

    /// Creates a fresh table on the server at `endpoint`.
    pub async fn create(endpoint: &str, view: Option<aws_sdk_dynamodb::types::StreamViewType>) -> Self {
        let client = aws_sdk_dynamodb::Client::from_conf(sdk_config(endpoint));
        let name = format!("scans_{}", unique());
        let attr = |n: &str| {
            AttributeDefinition::builder()
                .attribute_name(n)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap()
        };
        let key =
            |n: &str, t: KeyType| KeySchemaElement::builder().attribute_name(n).key_type(t).build().unwrap();
        let throughput = ProvisionedThroughput::builder()
            .read_capacity_units(1000)
            .write_capacity_units(1000)
            .build()
            .unwrap();
        client
            .create_table()
            .table_name(&name)
            .attribute_definitions(attr("scanId"))
            .attribute_definitions(attr("datePartition"))
            .attribute_definitions(attr("updatedAt"))
            .key_schema(key("scanId", KeyType::Hash))
            .provisioned_throughput(throughput.clone())
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(INDEX)
                    .key_schema(key("datePartition", KeyType::Hash))
                    .key_schema(key("updatedAt", KeyType::Range))
                    .projection(Projection::builder().projection_type(ProjectionType::All).build())
                    .provisioned_throughput(throughput)
                    .build()
                    .unwrap(),
            )
            .set_stream_specification(view.map(|v| {
                aws_sdk_dynamodb::types::StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(v)
                    .build()
                    .unwrap()
            }))
            .send()
            .await
            .expect("create table");
        // dynalite creates tables asynchronously: wait, and fail loudly if it never is ready.
        let mut status = None;
        for _ in 0..400 {
            let d = client.describe_table().table_name(&name).send().await.unwrap();
            status = d.table.and_then(|t| t.table_status).map(|s| s.as_str().to_owned());
            if status.as_deref() == Some("ACTIVE") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(status.as_deref(), Some("ACTIVE"), "table {name} did not become active in 20 s");
        Table { name, client, endpoint: endpoint.to_string() }
    }

    /// Deletes the item of scan id `scan`.
    pub async fn delete(&self, scan: &str) {
        self.client
            .delete_item()
            .table_name(&self.name)
            .key("scanId", aws_sdk_dynamodb::types::AttributeValue::S(scan.to_string()))
            .send()
            .await
            .expect("delete item");
    }

    /// The binary's command line against the database at `url`, with this table's server
    /// as both the DynamoDB and the DynamoDB Streams endpoint.
    pub fn command(&self, url: &str, args: &[&str]) -> std::process::Command {
        let mut cmd = command(url, args);
        cmd.env("AWS_ENDPOINT_URL_DYNAMODB", &self.endpoint)
            .env("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", &self.endpoint);
        cmd
    }

    /// Writes items with BatchWriteItem, retrying unprocessed items.
    pub async fn put(&self, items: &[Item]) {
        for chunk in items.chunks(25) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|i| {
                    let item = i.iter().map(|(k, v)| (k.clone(), to_sdk(v.clone()))).collect();
                    WriteRequest::builder()
                        .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                        .build()
                })
                .collect();
            while !requests.is_empty() {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.name, requests)
                    .send()
                    .await
                    .expect("batch write");
                requests = out.unprocessed_items.and_then(|mut m| m.remove(&self.name)).unwrap_or_default();
            }
        }
    }
}

/// Runs the real binary with the test servers' environment; returns its output.
pub async fn scansync(db: &TestDb, args: &[&str]) -> Output {
    scansync_env(db, args, &[]).await
}

/// Runs the binary with extra environment variables.
pub async fn scansync_env(db: &TestDb, args: &[&str], extra: &[(&str, String)]) -> Output {
    scansync_url(&db.url, args, extra).await
}

/// The binary's command line against the database at `url`, with the test servers'
/// environment (for runs the test starts, stops or signals itself).
pub fn command(url: &str, args: &[&str]) -> std::process::Command {
    command_of(env!("CARGO_BIN_EXE_scansync"), url, args)
}

/// [`command`] for another binary of the package (the Lambda `bootstrap`).
pub fn command_of(exe: &str, url: &str, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(exe);
    cmd.args(args)
        .env("DATABASE_URL", url)
        .env("AWS_ENDPOINT_URL_DYNAMODB", env("SCANSYNC_TEST_DYNAMODB_URL"))
        .env("AWS_ENDPOINT_URL_SSM", env("SCANSYNC_TEST_SSM_URL"))
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("SCANSYNC_SCHEMA");
    cmd
}

/// Runs the binary against the database at `url`, with extra environment variables.
pub async fn scansync_url(url: &str, args: &[&str], extra: &[(&str, String)]) -> Output {
    let mut cmd = command(url, args);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || cmd.output().expect("run scansync")).await.unwrap()
}

/// Asserts the exit status, printing the output when it differs.
pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit status\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A scan record in the shape upstream writes.
pub fn record(content: &str, scan: &str, updated_at: &str, caption: &str) -> Item {
    let partition = Timestamp::parse(updated_at).unwrap().day().to_string();
    [
        ("scanId", Attr::S(scan.into())),
        ("datePartition", Attr::S(partition)),
        ("updatedAt", Attr::S(updated_at.into())),
        ("platform", Attr::S("tiktok".into())),
        ("contentId", Attr::S(content.into())),
        ("caption", Attr::S(caption.into())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Runs a query returning one text column, in order.
pub async fn column(c: &Client, sql: &str) -> Vec<String> {
    c.query(sql, &[]).await.unwrap().iter().map(|r| r.get(0)).collect()
}

/// Sets attributes on an item.
pub fn with(mut item: Item, attrs: &[(&str, Attr)]) -> Item {
    for (k, v) in attrs {
        item.insert((*k).to_owned(), v.clone());
    }
    item
}

/// An instant `hours` before now, as an ISO string with milliseconds.
pub fn hours_ago(hours: f64) -> String {
    Timestamp::now().add_micros(-(hours * 3600e6) as i64).to_iso()
}

/// Every row of every canonical table, all columns, as text: two dumps are equal only if
/// nothing at all changed (ids and synced_at included).
pub async fn dump_exact(c: &Client, schema: &str) -> Vec<String> {
    let mut out = Vec::new();
    for t in ["creators", "communities", "tags", "content", "content_tags", "quarantine"] {
        let order = if t == "content_tags" { "content_id, tag_id" } else { "id" };
        let rows =
            c.query(&format!("select t::text from {schema}.{t} t order by {order}"), &[]).await.unwrap();
        out.extend(rows.iter().map(|r| format!("{t}: {}", r.get::<_, String>(0))));
    }
    out
}

/// The canonical state by natural keys (no surrogate ids, no synced_at): equal for two
/// databases that received the same records in different orders.
pub async fn dump_logical(c: &Client, schema: &str) -> Vec<String> {
    let queries = [
        "select 'creator', platform, external_id, handle, display_name, follower_count::text, source_updated_at::text, source_scan_id, deleted_at::text from {s}.creators order by 2, 3",
        "select 'community', platform, external_id, name, source_updated_at::text, source_scan_id from {s}.communities order by 2, 3",
        "select 'tag', name from {s}.tags order by 2",
        "select 'content', c.platform, c.external_id, c.url, c.caption, cr.external_id, cm.external_id,
                c.view_count::text, c.like_count::text, c.comment_count::text, c.share_count::text,
                c.posted_at::text, c.source_updated_at::text, c.source_scan_id, c.metadata::text, c.extra::text,
                c.deleted_at::text, c.deleted_scan_id
         from {s}.content c left join {s}.creators cr on cr.id = c.creator_id
         left join {s}.communities cm on cm.id = c.community_id order by 2, 3",
        "select 'edge', c.platform, c.external_id, t.name from {s}.content_tags ct
         join {s}.content c on c.id = ct.content_id join {s}.tags t on t.id = ct.tag_id order by 2, 3, 4",
    ];
    let mut out = Vec::new();
    for q in queries {
        let q = q.replace("{s}", schema);
        let rows = c.query(&format!("select row(x.*)::text from ({q}) x"), &[]).await.unwrap();
        let mut block: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
        block.sort();
        out.extend(block);
    }
    out
}

/// Writes a DynamoDB export: one gzip JSON-lines data file per entry of `files`, and the
/// manifest listing them. Returns the directory.
pub fn write_export<L: AsRef<[u8]>>(files: &[Vec<L>]) -> std::path::PathBuf {
    use std::io::Write;
    let dir = std::env::temp_dir().join(format!("scansync-test-export-{}", unique()));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let mut manifest = String::new();
    for (n, lines) in files.iter().enumerate() {
        let key = format!("data/file-{n:02}.json.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for l in lines {
            gz.write_all(l.as_ref()).unwrap();
            gz.write_all(b"\n").unwrap();
        }
        std::fs::write(dir.join(&key), gz.finish().unwrap()).unwrap();
        manifest.push_str(&format!("{{\"itemCount\":{},\"dataFileS3Key\":\"{key}\"}}\n", lines.len()));
    }
    std::fs::write(dir.join("manifest-files.json"), manifest).unwrap();
    dir
}

/// Renders an item as an export line.
pub fn export_line(item: &Item) -> String {
    let mut s = String::from("{\"Item\":");
    scansync::attr::write_item_dynamodb_json(item, &mut s);
    s.push('}');
    s
}

/// A throwaway PostgreSQL cluster of the test's own (its own data directory and port), for
/// restarts and outages; the machine's shared cluster is never touched. `initdb` refuses to
/// run as root, so the cluster runs as the `postgres` OS user.
pub struct Cluster {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    dir: std::path::PathBuf,
}

fn pg_bin(tool: &str) -> String {
    let version = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .max()
        .expect("a PostgreSQL version");
    format!("/usr/lib/postgresql/{version}/bin/{tool}")
}

fn as_postgres(cmd: &str) {
    let out = std::process::Command::new("su")
        .args(["postgres", "-s", "/bin/bash", "-c", cmd])
        .output()
        .expect("run su postgres");
    assert!(
        out.status.success(),
        "{cmd}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Cluster {
    /// Creates and starts a cluster (trust auth) on a free port.
    pub fn start() -> Self {
        Self::start_with(|_| {})
    }

    /// Runs `psql` as the postgres user on the cluster's socket (trust).
    pub fn psql(&self, sql: &str) {
        as_postgres(&format!(
            "{} -X -q -h {} -p {} -d postgres -c \"{sql}\"",
            pg_bin("psql"),
            self.dir.display(),
            self.port
        ));
    }

    /// Creates a cluster, lets `setup` change its data directory (configuration, files; the
    /// files are handed to the postgres user after), then starts it.
    pub fn start_with(setup: impl FnOnce(&std::path::Path)) -> Self {
        let dir = std::env::temp_dir().join(format!("scansync-test-cluster-{}", unique()));
        std::fs::create_dir_all(&dir).unwrap();
        std::process::Command::new("chown")
            .args(["postgres:postgres", dir.to_str().unwrap()])
            .status()
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        as_postgres(&format!(
            "{} -D {}/data -U postgres --auth=trust -N >/dev/null",
            pg_bin("initdb"),
            dir.display()
        ));
        setup(&dir.join("data"));
        std::process::Command::new("chown")
            .args(["-R", "postgres:postgres", dir.to_str().unwrap()])
            .status()
            .unwrap();
        let c = Cluster { port, dir };
        c.ctl("start");
        c
    }

    fn ctl(&self, action: &str) {
        let d = self.dir.display();
        let opts = format!("-p {} -k {d} -c listen_addresses=127.0.0.1 -c fsync=off", self.port);
        as_postgres(&format!(
            "{} -D {d}/data -o '{opts}' -l {d}/log -w -m fast {action} >/dev/null",
            pg_bin("pg_ctl")
        ));
    }

    /// Restarts the server (fast shutdown: every session is cut).
    pub fn restart(&self) {
        self.ctl("restart");
    }

    /// Crashes the server (immediate shutdown: no checkpoint, recovery at the next start,
    /// which empties unlogged tables) and starts it again.
    pub fn crash(&self) {
        let d = self.dir.display();
        as_postgres(&format!("{} -D {d}/data -m immediate stop >/dev/null", pg_bin("pg_ctl")));
        self.ctl("start");
    }

    /// Returns the URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let d = self.dir.display();
        let _ = std::process::Command::new("su")
            .args([
                "postgres",
                "-s",
                "/bin/bash",
                "-c",
                &format!("{} -D {d}/data -m immediate stop", pg_bin("pg_ctl")),
            ])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Makes PostgreSQL refuse every content row written from now on (the next run fails),
/// and forgets the checkpoint and the content so the next run writes them again (an
/// unchanged replay writes nothing, so the trigger would never fire).
pub async fn refuse_content(db: &TestDb) {
    db.client()
        .await
        .batch_execute(
            "create function scansync.refuse() returns trigger language plpgsql as
             $$ begin raise exception 'refused by test'; end $$;
             create trigger refuse before insert or update on scansync.content
             for each row execute function scansync.refuse();
             delete from scansync.checkpoints;
             delete from scansync.content;",
        )
        .await
        .unwrap();
}

/// A PgBouncer in front of the machine's PostgreSQL for one database, in `pool_mode`
/// (`session` or `transaction`), on a free port; stopped when dropped. PgBouncer refuses to
/// run as root, so it runs as the `postgres` OS user, as the throwaway clusters do.
pub struct Pooler {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    dir: std::path::PathBuf,
    child: std::process::Child,
}

impl Pooler {
    /// Starts PgBouncer for the database of `db` in `pool_mode`.
    pub fn start(db: &TestDb, pool_mode: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("scansync-test-pooler-{}", unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let ini = format!(
            "[databases]\n{name} = host=127.0.0.1 port=5432 dbname={name}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\nauth_type = trust\nauth_file = {dir}/users.txt\npool_mode = {pool_mode}\ndefault_pool_size = 8\nmax_client_conn = 100\nlogfile = {dir}/pgbouncer.log\n",
            name = db.name,
            dir = dir.display()
        );
        std::fs::write(dir.join("pgbouncer.ini"), ini).unwrap();
        std::fs::write(dir.join("users.txt"), "\"postgres\" \"\"\n").unwrap();
        std::process::Command::new("chown")
            .args(["-R", "postgres:postgres", dir.to_str().unwrap()])
            .status()
            .unwrap();
        let mut child = std::process::Command::new("su")
            .args([
                "postgres",
                "-s",
                "/bin/sh",
                "-c",
                &format!("exec pgbouncer {}/pgbouncer.ini", dir.display()),
            ])
            .spawn()
            .expect("start pgbouncer (scripts/with-servers installs it)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Pooler { port, dir, child };
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "pgbouncer did not listen on {port}: {}",
            std::fs::read_to_string(dir.join("pgbouncer.log")).unwrap_or_default()
        );
    }

    /// The URL of the database through the pooler.
    pub fn url(&self, db: &TestDb) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{}", self.port, db.name)
    }
}

impl Drop for Pooler {
    fn drop(&mut self) {
        let _ = std::process::Command::new("pkill")
            .args(["-f", &format!("pgbouncer {}/pgbouncer.ini", self.dir.display())])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Asserts two table dumps are equal, showing only the rows that differ (a whole dump is
/// too long to read).
pub fn assert_same_rows(got: &[String], want: &[String], what: &str) {
    if got == want {
        return;
    }
    let (g, w): (std::collections::BTreeSet<&String>, std::collections::BTreeSet<&String>) =
        (got.iter().collect(), want.iter().collect());
    let extra: Vec<&&String> = g.difference(&w).take(8).collect();
    let missing: Vec<&&String> = w.difference(&g).take(8).collect();
    panic!(
        "{what}: {} rows against {} wanted; {} extra, e.g. {extra:#?}; {} missing, e.g. {missing:#?}",
        got.len(),
        want.len(),
        g.difference(&w).count(),
        w.difference(&g).count()
    );
}

/// A child process killed (and reaped) when dropped: a test that fails midway leaves no
/// follower or server running behind it.
pub struct Running(pub Option<std::process::Child>);

impl Running {
    /// Takes the child out (to wait for it elsewhere): it is no longer killed on drop.
    pub fn take(mut self) -> std::process::Child {
        self.0.take().expect("a running child")
    }
}

impl std::ops::Deref for Running {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref().expect("a running child")
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.0.as_mut().expect("a running child")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
