//! PostgreSQL for the outbox tests: the shared server
//! (`HUBBUB_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`,
//! trust auth) in which each test creates (and drops) a database of its own,
//! and private clusters (`initdb` + `pg_ctl` on a free loopback port) for
//! tests that stop and restart PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio_postgres::{Client, NoTls};

use crate::WAIT;

/// The shared server's URL (any database; tests create their own).
pub fn shared_url() -> String {
    std::env::var("HUBBUB_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Connects and drives the connection in the background.
pub async fn connect(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// `url` with its database replaced by `db`.
fn with_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let authority_end = base
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| base[start..].find('/').map(|j| start + j))
        .unwrap_or(base.len());
    format!("{}/{db}{query}", &base[..authority_end])
}

/// A database of its own on a server, dropped (with its connections) on drop.
#[derive(Debug)]
pub struct TestDb {
    admin_url: String,
    /// The database name.
    pub name: String,
    /// The URL of the database.
    pub url: String,
}

impl TestDb {
    /// Creates `hubbub_<test>_<random>` on the shared server.
    pub async fn create(test: &str) -> Result<TestDb> {
        Self::create_on(&shared_url(), test).await
    }

    /// Creates `hubbub_<test>_<random>` on the server at `admin_url`.
    pub async fn create_on(admin_url: &str, test: &str) -> Result<TestDb> {
        let name = format!("hubbub_{test}_{:08x}", rand::random::<u32>());
        let admin = connect(admin_url).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .with_context(|| format!("creating database {name}"))?;
        Ok(TestDb {
            admin_url: admin_url.to_owned(),
            url: with_db(admin_url, &name),
            name,
        })
    }

    /// A new connection to the database.
    pub async fn client(&self) -> Result<Client> {
        connect(&self.url).await
    }

    /// Creates the outbox schema for `table` (what `hubbub outbox init --apply` runs).
    pub async fn init_outbox(&self, table: &str) -> Result<()> {
        self.client()
            .await?
            .batch_execute(&hubbub::outbox::sql::init_script(table))
            .await
            .context("applying the outbox schema")
    }

    /// TOML for a node consuming `table` in this database.
    pub fn node_toml(&self, table: &str, batch_size: usize) -> String {
        format!(
            "[outbox]\npostgres_url = \"{}\"\ntable = \"{table}\"\npoll_interval = \"200ms\"\nbatch_size = {batch_size}\n",
            self.url
        )
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime: do the async work on a thread of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let admin = connect(&admin_url).await?;
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await?;
                anyhow::Ok(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// The directory of `initdb` and `pg_ctl` (`/usr/lib/postgresql/<newest>/bin`,
/// or `HUBBUB_TEST_PG_BIN`).
pub fn pg_bin() -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("HUBBUB_TEST_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("no /usr/lib/postgresql: install postgresql (scripts/postgres-for-tests.sh)")?
        .filter_map(|e| {
            let e = e.ok()?;
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .context("no PostgreSQL server binaries under /usr/lib/postgresql")
}

/// A private PostgreSQL cluster on a free loopback port (trust auth for
/// `postgres`), stopped and removed on drop. As root, it runs as the
/// `postgres` user (PostgreSQL refuses to run as root).
#[derive(Debug)]
pub struct OwnPostgres {
    /// Its port.
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a PostgreSQL program (as `postgres` when we are root).
fn pg_command(program: &Path, args: &[&str]) -> Result<()> {
    let mut cmd = if is_root() {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        std::process::Command::new(program)
    };
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    if !out.status.success() {
        bail!(
            "{} {args:?} failed: {}{}",
            program.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

impl OwnPostgres {
    /// Creates and starts a cluster.
    pub async fn start() -> Result<OwnPostgres> {
        let bin = pg_bin()?;
        let port = crate::redis::free_port()?;
        let dir = std::env::temp_dir().join(format!(
            "hubbub-pg-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir)?;
        if is_root() {
            let ok = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()?
                .success();
            if !ok {
                bail!("chown postgres {} failed", dir.display());
            }
        }
        let data = dir.join("data");
        let data_s = data.to_string_lossy().into_owned();
        pg_command(
            &bin.join("initdb"),
            &[
                "-D",
                &data_s,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        let pg = OwnPostgres { port, dir, bin };
        pg.start_server().await?;
        Ok(pg)
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    async fn start_server(&self) -> Result<()> {
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
            self.port,
            self.dir.display()
        );
        pg_command(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                &data.to_string_lossy(),
                "-l",
                &log.to_string_lossy(),
                "-o",
                &opts,
                "-w",
                "start",
            ],
        )?;
        let deadline = tokio::time::Instant::now() + WAIT;
        while connect(&self.url()).await.is_err() {
            if tokio::time::Instant::now() > deadline {
                bail!("private PostgreSQL on {} did not answer", self.port);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Stops the server (fast shutdown: sessions are cut off).
    pub fn stop(&self) -> Result<()> {
        pg_command(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                &self.dir.join("data").to_string_lossy(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        )
    }

    /// Starts it again on the same port with the same data.
    pub async fn restart(&self) -> Result<()> {
        self.start_server().await
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = pg_command(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                &self.dir.join("data").to_string_lossy(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One outbox row to insert: topic, event, data.
pub type OutboxRow = (String, String, serde_json::Value);

/// Inserts `rows` into `table` in one transaction (one statement), in order.
pub async fn insert_rows(client: &Client, table: &str, rows: &[OutboxRow]) -> Result<u64> {
    let topics: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let events: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    let data: Vec<String> = rows.iter().map(|r| r.2.to_string()).collect();
    let sql = format!(
        "INSERT INTO \"{table}\" (topic, event, data) \
         SELECT t, e, d::jsonb FROM unnest($1::text[], $2::text[], $3::text[]) \
         WITH ORDINALITY AS r(t, e, d, n) ORDER BY n"
    );
    Ok(client.execute(&sql, &[&topics, &events, &data]).await?)
}

/// Rows in `table`.
pub async fn count(client: &Client, table: &str) -> Result<i64> {
    Ok(client
        .query_one(&format!("SELECT count(*) FROM \"{table}\""), &[])
        .await?
        .try_get(0)?)
}

#[cfg(test)]
mod tests {
    use super::with_db;

    #[test]
    fn database_is_replaced() {
        assert_eq!(
            with_db("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_db("postgres://h:1?sslmode=disable", "x"),
            "postgres://h:1/x?sslmode=disable"
        );
    }
}
