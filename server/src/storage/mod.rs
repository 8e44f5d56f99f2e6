//! Storage on embedded SQLite or PostgreSQL behind one interface.
//!
//! Architecture invariant: this module is the only place that speaks SQL.
//! Queries are written once, in the dialect both engines accept (`$n`
//! placeholders in order, BIGINT times and flags), and run through sqlx's
//! `Any` driver; only the migrations differ per engine.

mod actors;
mod audit;
mod bulk;
mod ceremonies;
mod consents;
mod directory;
mod documents;
mod enrollments;
mod notify;
mod passkeys;
mod patient_index;
mod read_access;
mod sessions;
mod smart;

use std::fmt::Write as _;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};

use crate::config::DatabaseUrl;
use shared::DocId;

pub use audit::{AuditEntry, AuditEvent};
pub use bulk::NewRecord;
pub use ceremonies::{Ceremony, CeremonyKind};
pub use directory::{CaregiverInfo, NewUser, UserRecord};
pub use documents::{
    Author, DocumentRow, ENTRIES_PER_DAY_PATIENT_SIDE, ENTRIES_PER_DAY_STAFF, NewChunk,
    StoredDocument, Writes,
};
pub use enrollments::{Enrolled, OpenEnrollment};
pub use notify::{Listener, MAX_PAYLOAD, Notification};
pub use passkeys::{PasskeyInfo, PasskeyRevocation, StoredPasskey};
pub use patient_index::{IndexRow, MAX_WORK, PAGE, WorkSource};
pub use sessions::{NewSession, SessionRow};
pub use smart::{NewGrant, SmartClient, TakenCode, TokenRow};

/// TCP keepalive on PostgreSQL's side of every connection (pool and
/// LISTEN). sqlx 0.8 cannot turn on keepalive for its own sockets (no socket
/// option in `PgConnectOptions`), so the server's end does it; the instance
/// itself notices a dead LISTEN connection by its heartbeat
/// (`sync::cluster`). Probes after 30 s idle keep NATs and firewalls from
/// forgetting an idle connection (their idle timeouts are minutes), and a
/// client gone for 30 + 3 x 10 s = 60 s (or not acknowledging data for 60 s)
/// is disconnected, so the backend of a dead instance stops holding row
/// locks and its LISTEN slot after a minute rather than the kernel's two
/// hours. Needs PostgreSQL 12 or newer (`tcp_user_timeout`).
const SERVER_KEEPALIVE: &str = "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3 -c tcp_user_timeout=60000";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL: expected sqlite:// or postgres://")]
    UnsupportedUrl,
    #[error("cannot create the database directory {0}: {1}")]
    CreateDir(String, std::io::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Documents another writer changed since the copy was read: judge again.
    #[error("{} document(s) changed since they were read", .0.len())]
    Stale(Vec<DocId>),
    /// Documents the author may no longer write (consent revoked, account ended).
    #[error("access to {} document(s) has ended", .0.len())]
    AccessEnded(Vec<DocId>),
    /// Documents to which the author would add more entries today than
    /// their quota allows.
    #[error("daily quota reached for {} document(s)", .0.len())]
    Quota(Vec<DocId>),
    /// An actor id was bound to someone else while the batch was stored.
    #[error("an actor id belongs to another user")]
    ActorTaken,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }

    /// The placeholders of an `IN (...)` list of `n` values.
    fn placeholder_list(self, n: usize) -> String {
        let row = self.placeholder_rows(1, n);
        row[1..row.len() - 1].to_owned()
    }

    /// `(?, ?), (?, ?), ...` on SQLite, `($1, $2), ($3, $4), ...` on
    /// PostgreSQL: the placeholders of a multi-row `VALUES` with `rows` rows
    /// of `columns` values, bound row by row.
    ///
    /// SQLite takes `$1` for a named parameter: preparing a statement looks
    /// each name up among those before it, and sqlx asks each one's name
    /// when binding, both by a linear scan, so a statement of 500 rows spent
    /// most of its time comparing names (a third of the SQLite thread's
    /// time in a catch-up). Plain `?`s are numbered in order, as bound.
    fn placeholder_rows(self, rows: usize, columns: usize) -> String {
        let mut sql = String::with_capacity(rows * columns * 7);
        for row in 0..rows {
            sql.push_str(if row == 0 { "(" } else { ", (" });
            for column in 0..columns {
                if column > 0 {
                    sql.push_str(", ");
                }
                match self {
                    Self::Sqlite => sql.push('?'),
                    Self::Postgres => {
                        let _ = write!(sql, "${}", row * columns + column + 1);
                    }
                }
            }
            sql.push(')');
        }
        sql
    }
}

/// The server's database: a pool plus which engine it is.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Kept for LISTEN, which needs a connection of its own (password hidden from `Debug`).
    url: Option<std::sync::Arc<DatabaseUrl>>,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Opens (creating if needed) the database at `url` and brings its schema
    /// up to date. A `sqlite://` file and its directory are created on first use.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        let mut url = url.to_owned();
        if backend == Backend::Sqlite {
            let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
            let path = path.split('?').next().unwrap_or_default().to_owned();
            if let Some(dir) = Path::new(&path).parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError::CreateDir(dir.display().to_string(), e))?;
            }
            if !url.contains("mode=") {
                url.push_str(if url.contains('?') { "&mode=rwc" } else { "?mode=rwc" });
            }
        }
        let mut options = AnyConnectOptions::from_str(&url)?.disable_statement_logging();
        let listen_url =
            (backend == Backend::Postgres).then(|| with_server_keepalive(&mut options));
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the writer; FULL makes a
                        // commit durable before it is acknowledged, even across
                        // power loss; the busy timeout queues writers.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        Ok(Self { pool, backend, url: listen_url })
    }

    /// Tests: LISTEN through another address than the pool's (a relay the
    /// test can silence), with the same keepalive settings.
    #[cfg(feature = "testing")]
    pub fn listen_through(mut self, url: &str) -> Result<Self, StoreError> {
        self.url = Some(with_server_keepalive(&mut AnyConnectOptions::from_str(url)?));
        Ok(self)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A transaction that writes. On SQLite it takes the write lock when it
    /// begins (`BEGIN IMMEDIATE`): a plain `BEGIN` reads first and upgrades
    /// at its first write, and an upgrade that meets another writer fails at
    /// once with "database is locked" instead of waiting `busy_timeout`, so
    /// concurrent writers (two clinics syncing) would see spurious failures.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// A round trip to the database, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Tests: a run-time setting as one pool connection sees it
    /// (PostgreSQL's `current_setting`).
    #[cfg(feature = "testing")]
    pub async fn setting(&self, name: &str) -> Result<String, StoreError> {
        Ok(sqlx::query_scalar("SELECT current_setting($1)")
            .bind(name)
            .fetch_one(&self.pool)
            .await?)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `application_name` of the LISTEN connection, so operators (and tests)
/// can tell it apart in `pg_stat_activity`.
pub const LISTENER_APPLICATION_NAME: &str = "portal-listener";

/// Adds `SERVER_KEEPALIVE` to PostgreSQL connect options, as startup
/// options (no round trip; sqlx appends them to any `options` already in the
/// URL), and returns the URL for the LISTEN connection, which gets the same.
fn with_server_keepalive(options: &mut AnyConnectOptions) -> std::sync::Arc<DatabaseUrl> {
    options.database_url.query_pairs_mut().append_pair("options", SERVER_KEEPALIVE);
    let mut listen = options.database_url.clone();
    listen.query_pairs_mut().append_pair("application_name", LISTENER_APPLICATION_NAME);
    std::sync::Arc::new(DatabaseUrl::from(listen.as_str()))
}

/// Most rows one statement writes or names: batches are split into parts
/// of this size, which keeps every statement's placeholders (up to 8 per
/// row) far below both engines' limits (SQLite 32,766, PostgreSQL 65,535).
const ROWS_PER_STATEMENT: usize = 500;

/// The ids a `... RETURNING id` statement returned.
fn ids(rows: Vec<sqlx::any::AnyRow>) -> Vec<String> {
    use sqlx::Row;
    rows.iter().map(|r| r.get(0)).collect()
}

fn parse_id<T: FromStr>(text: &str) -> Result<T, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt("an id column holds a value that is not a UUID".into()))
}

#[cfg(test)]
mod tests {
    use super::Backend;

    #[test]
    fn placeholders_are_numbered_in_order() {
        assert_eq!(Backend::Postgres.placeholder_list(3), "$1, $2, $3");
        assert_eq!(Backend::Postgres.placeholder_rows(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(Backend::Postgres.placeholder_list(1), "$1");
    }

    /// SQLite's are plain `?`s, which it numbers in order (see
    /// `Backend::placeholder_rows`).
    #[test]
    fn sqlite_placeholders_are_anonymous() {
        assert_eq!(Backend::Sqlite.placeholder_list(3), "?, ?, ?");
        assert_eq!(Backend::Sqlite.placeholder_rows(2, 2), "(?, ?), (?, ?)");
    }
}
