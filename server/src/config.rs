//! Configuration from flags and environment. Secrets (database passwords)
//! are hidden from `Debug`, so a config can be logged.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// Default budget for canonical documents in memory (`--doc-cache-mb`):
/// enough for tens of thousands of typical records, small next to a
/// server's memory.
pub const DEFAULT_DOC_CACHE_MB: usize = 256;

/// A database URL whose password never reaches a log.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl From<&str> for DatabaseUrl {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // scheme://user:password@host/db -> scheme://user:***@host/db
        match (self.0.find("://"), self.0.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                let userinfo = &self.0[scheme_end + 3..at];
                let user = userinfo.split(':').next().unwrap_or_default();
                write!(f, "\"{}{}:***{}\"", &self.0[..scheme_end + 3], user, &self.0[at..])
            }
            _ => write!(f, "{:?}", self.0),
        }
    }
}

/// Settings of a running server.
#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "PORTAL_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// `sqlite://path/to/file.db` (embedded, the default) or `postgres://...`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/portal.db")]
    pub database_url: DatabaseUrl,
    /// The URL people open, e.g. `https://portal.example.org`; passkeys are
    /// bound to its host. Defaults to `http://localhost:<port>`.
    #[arg(long, env = "PORTAL_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Directory holding the built web app (index.html, app.js, app_bg.wasm).
    #[arg(long, env = "PORTAL_STATIC_DIR", default_value = "app/dist")]
    pub static_dir: PathBuf,
    /// Behind your own reverse proxy or load balancer: take the client's
    /// address (for the sign-in rate limit) from the last `X-Forwarded-For`
    /// entry, which that proxy appends. Without a proxy leave it off, or
    /// clients could pick their own address.
    #[arg(long, env = "PORTAL_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,
    /// Memory for canonical documents, in MiB (estimated): the least
    /// recently used documents nobody is using are dropped beyond it and
    /// loaded again from the database when next needed.
    #[arg(long, env = "PORTAL_DOC_CACHE_MB", default_value_t = DEFAULT_DOC_CACHE_MB)]
    pub doc_cache_mb: usize,
}

impl Config {
    pub fn doc_cache_bytes(&self) -> usize {
        self.doc_cache_mb.saturating_mul(1024 * 1024)
    }

    /// The public URL, given the port actually bound.
    pub fn public_url(&self, port: u16) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://localhost:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_database_password() {
        let url: DatabaseUrl = "postgres://portal:s3cret@db.internal:5432/portal".parse().unwrap();
        let shown = format!("{url:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("portal:***@db.internal"), "{shown}");
    }
}
