//! What the portal's client and server agree on: the record schema, who may
//! write which part of it, and (later) the sync state machine.
//!
//! Architecture invariant: this crate does no I/O. Time and randomness enter
//! only through id minting (`EntryId::mint`) and arguments.

pub mod api;
pub mod catalog;
pub mod fhir;
pub mod fields;
mod hydrate;
pub mod ids;
pub mod policy;
pub mod read;
pub mod record;
pub mod safety;
pub mod schema;
pub mod status;
pub mod sync;
pub mod vec_map;

pub use ids::{ClinicId, DocId, EntryId, PatientId, UserId};
pub use policy::{
    Denial, Plan, Principal, Role, Rule, check_change, check_edit, check_entries, check_ops,
    check_quota,
};
pub use schema::DocKind;
