//! Server integration tests, one binary: real SQLite files and real
//! PostgreSQL databases, real servers on port 0.

mod access;
mod auth;
mod authenticator;
mod client;
mod cluster;
mod demo;
mod durability;
mod fhir;
mod fhir_validation;
mod http;
mod refusals;
mod sessions;
mod smart;
mod staff_list;
mod storage;
mod sync;

use server::storage::Backend;

/// Every storage test runs on both engines.
pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];
