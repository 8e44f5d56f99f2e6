//! Identifier newtypes. Every id is a UUID: entries and people use UUIDv7 so
//! ids minted offline on many devices never collide and sort by creation time;
//! document ids are UUIDv5 derived from what the document holds, so every
//! replica names a patient's documents the same way without asking the server.

use std::fmt;
use std::str::FromStr;

use autosurgeon::{Hydrate, HydrateError, Reconcile, Reconciler};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered id (UUIDv7), safe to mint offline.
            pub fn mint() -> Self {
                Self(Uuid::now_v7())
            }

            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        /// Only the canonical spelling (lowercase, hyphenated): an id has one
        /// spelling, so an entry key can never be another spelling of an
        /// existing entry's.
        impl FromStr for $name {
            type Err = NotCanonical;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_canonical(s).map(Self)
            }
        }

        impl Reconcile for $name {
            type Key<'a> = autosurgeon::reconcile::NoKey;
            fn reconcile<R: Reconciler>(&self, reconciler: R) -> Result<(), R::Error> {
                self.to_string().reconcile(reconciler)
            }
        }

        impl Hydrate for $name {
            fn hydrate_string(s: &str) -> Result<Self, HydrateError> {
                s.parse()
                    .map_err(|_| HydrateError::unexpected(stringify!($name), "a string that is not a UUID".into()))
            }
        }
    };
}

uuid_id!(
    /// A person who signs in: patient, caregiver, provider or clinic admin.
    UserId
);
uuid_id!(
    /// A patient, whose record follows them across clinics.
    PatientId
);
uuid_id!(
    /// A clinic (organisation) that writes into records and reads them with consent.
    ClinicId
);
uuid_id!(
    /// One entry in a record: a result, prescription, message, refill request...
    EntryId
);
uuid_id!(
    /// One Automerge document; see `DocKind::doc_id`.
    DocId
);

/// A string that is not a UUID in its canonical spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a UUID in canonical form (lowercase, hyphenated)")]
pub struct NotCanonical;

pub(crate) fn parse_canonical(s: &str) -> Result<Uuid, NotCanonical> {
    let uuid = Uuid::try_parse(s).map_err(|_| NotCanonical)?;
    let mut buffer = [0u8; uuid::fmt::Hyphenated::LENGTH];
    if uuid.hyphenated().encode_lower(&mut buffer) == s { Ok(uuid) } else { Err(NotCanonical) }
}

/// Namespace for the UUIDv5 document ids (a fixed random UUID; never change it).
pub(crate) const DOC_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_9a2e_4b7d_4c33_9e0a_52f8_d1b4_a7c6);

impl DocId {
    pub(crate) fn derive(name: &str) -> Self {
        Self(Uuid::new_v5(&DOC_NAMESPACE, name.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_ids_are_unique_and_time_ordered() {
        let ids: Vec<EntryId> = (0..1000).map(|_| EntryId::mint()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len());
        assert_eq!(ids.first().unwrap().as_uuid().get_version_num(), 7);
    }

    #[test]
    fn ids_round_trip_through_strings() {
        let id = PatientId::mint();
        assert_eq!(id.to_string().parse::<PatientId>().unwrap(), id);
        assert!("not-a-uuid".parse::<PatientId>().is_err());
        // Other spellings of the same UUID are not the id.
        for other in [
            id.to_string().to_uppercase(),
            id.as_uuid().simple().to_string(),
            format!("{{{id}}}"),
            id.as_uuid().urn().to_string(),
        ] {
            assert!(other.parse::<PatientId>().is_err(), "{other}");
        }
    }
}
