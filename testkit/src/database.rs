//! A database that exists for one test (or one benchmark run), on either engine.

use server::storage::{Backend, Store};

/// PostgreSQL server used by tests; override with `PORTAL_TEST_POSTGRES`.
pub fn postgres_admin_url() -> String {
    std::env::var("PORTAL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database that exists for one test: a file in a temporary directory, or a
/// freshly created PostgreSQL database that is dropped afterwards.
pub struct TestDatabase {
    pub url: String,
    /// The PostgreSQL server's admin URL and the database's name.
    postgres: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// A fresh database on `backend` (PostgreSQL at `postgres_admin_url`).
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let url = format!("sqlite://{}", dir.path().join("portal.db").display());
                Self { url, postgres: None, _dir: Some(dir) }
            }
            Backend::Postgres => Self::on_postgres(&postgres_admin_url()).await,
        }
    }

    /// A fresh database on the PostgreSQL server at `admin` (a URL whose
    /// user may create databases).
    pub async fn on_postgres(admin: &str) -> Self {
        let name = format!("portal_test_{}", uuid::Uuid::now_v7().simple());
        let mut conn =
            <sqlx::PgConnection as sqlx::Connection>::connect(admin).await.unwrap_or_else(|e| {
                panic!("PostgreSQL is needed here and is not reachable at {admin}: {e}")
            });
        sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create test database");
        let base = admin.rsplit_once('/').map_or(admin, |(base, _)| base);
        Self { url: format!("{base}/{name}"), postgres: Some((admin.to_owned(), name)), _dir: None }
    }

    pub async fn store(&self) -> Store {
        Store::connect(&self.url).await.expect("connect to test database")
    }

    /// Drops a PostgreSQL test database (call after closing its pools).
    pub async fn drop_database(self) {
        if let Some((admin, name)) = &self.postgres {
            let mut conn =
                <sqlx::PgConnection as sqlx::Connection>::connect(admin).await.expect("connect");
            sqlx::Executor::execute(
                &mut conn,
                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
            )
            .await
            .expect("drop test database");
        }
    }
}
