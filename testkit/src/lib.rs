//! What the portal's tests and benchmarks share, kept out of the product
//! crate: a fresh database per test on either engine, a real server on
//! port 0, a relay in front of the database that a test can silence, a
//! native replica that syncs over a real WebSocket, and bulk entries.
//!
//! It drives `server` through its public interface only; the few hooks
//! that need the server's insides (naming the sync user in a header,
//! listening through a relay, holding the cluster listener back) are behind
//! `server`'s `testing` feature, which `portal` never enables.

pub mod clinic;
mod database;
pub mod fixtures;
mod history;
mod relay;
pub mod replica;
mod test_server;

pub use database::{TestDatabase, postgres_admin_url};
pub use history::{History, add_history};
pub use relay::Relay;
pub use replica::{ClientError, Replica};
pub use test_server::TestServer;
