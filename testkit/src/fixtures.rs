//! Entries tests and benchmarks write in bulk.

use server::demo::fixtures::{Author, observation};
use shared::ClinicId;
use shared::UserId;
use shared::schema::Observation;

/// A glucose result recorded by `recorder` at `clinic`, for benchmarks and
/// tests that need many entries; the names must be the directory's (the
/// write policy checks them).
pub fn glucose_result(
    clinic: (ClinicId, &str),
    recorder: UserId,
    recorder_name: &str,
    value: f64,
) -> Observation {
    let (clinic, clinic_name) = clinic;
    let author = Author {
        user: recorder,
        name: recorder_name.into(),
        clinic: Some((clinic, clinic_name.into())),
    };
    let at = |t: &str| t.parse().expect("an RFC 3339 time");
    observation(
        "2345-7",
        value,
        at("2026-11-25T08:00:00Z"),
        author.provenance(at("2026-11-25T09:00:00Z")),
    )
}
