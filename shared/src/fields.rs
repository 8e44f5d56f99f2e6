//! The fields each entry type may hold, their value types and size limits.
//!
//! The write policy checks every operation of an incoming change against
//! this table before the change is applied: a field that is not listed, a
//! value of the wrong type or one over its limit is refused, so nothing
//! outside the schema is ever stored or replicated. It mirrors the structs
//! in `schema`; a test keeps the two in step.

use automerge::ScalarValue;

use crate::schema::Collection;

/// Characters, not bytes: these are what a person sees when they hit one.
pub mod limits {
    /// A person's or clinic's name.
    pub const NAME: usize = 200;
    /// Codes (LOINC, RxNorm, CVX, status codes) and their short displays.
    pub const CODE: usize = 64;
    pub const DISPLAY: usize = 300;
    /// Timestamps and dates (RFC 3339).
    pub const TIME: usize = 40;
    /// Dosage instructions, reasons, notes, reactions.
    pub const NOTE: usize = 2_000;
    /// A conversation's subject: a line, not a letter.
    pub const TOPIC: usize = 150;
    /// A message body: a long letter, not a document store.
    pub const BODY: usize = 10_000;
    /// Demographic fields (phone, email).
    pub const CONTACT: usize = 320;
    /// New entries one change may add: a panel of results with its report
    /// is about twenty.
    pub const ENTRIES_PER_CHANGE: usize = 100;
}

use limits::*;

/// What a field holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A string of at most this many characters.
    Text(usize),
    /// An id in its canonical spelling.
    Uuid,
    /// Any finite number.
    Number,
    /// A whole number from 0 to `u32::MAX`.
    Count,
    /// A nested map with these fields.
    Map(&'static [Field]),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    /// May be null (an `Option` that is `None`).
    pub optional: bool,
}

const fn req(name: &'static str, kind: Kind) -> Field {
    Field { name, kind, optional: false }
}

const fn opt(name: &'static str, kind: Kind) -> Field {
    Field { name, kind, optional: true }
}

pub const PROVENANCE: &[Field] = &[
    req("clinic", Kind::Uuid),
    req("clinic_name", Kind::Text(NAME)),
    req("recorder", Kind::Uuid),
    req("recorder_name", Kind::Text(NAME)),
    req("recorded", Kind::Text(TIME)),
];

/// Every clinical entry ends with these.
macro_rules! clinical {
    ($($field:expr),* $(,)?) => {
        &[
            $($field,)*
            req("status", Kind::Text(CODE)),
            req("provenance", Kind::Map(PROVENANCE)),
            opt("status_reason", Kind::Text(NOTE)),
            opt("status_by", Kind::Uuid),
            opt("status_at", Kind::Text(TIME)),
        ]
    };
}

const REPORT: &[Field] = clinical![
    req("loinc", Kind::Text(CODE)),
    req("display", Kind::Text(DISPLAY)),
    req("effective", Kind::Text(TIME))
];
const OBSERVATION: &[Field] = clinical![
    opt("report", Kind::Uuid),
    req("loinc", Kind::Text(CODE)),
    req("display", Kind::Text(DISPLAY)),
    opt("value_quantity", Kind::Number),
    opt("value_string", Kind::Text(NOTE)),
    opt("unit", Kind::Text(CODE)),
    opt("reference_low", Kind::Number),
    opt("reference_high", Kind::Number),
    req("effective", Kind::Text(TIME)),
    opt("replaces", Kind::Uuid),
    opt("interpretation", Kind::Text(CODE)),
];
const PRESCRIPTION: &[Field] = clinical![
    req("rxnorm", Kind::Text(CODE)),
    req("display", Kind::Text(DISPLAY)),
    req("dosage", Kind::Text(NOTE)),
    req("quantity", Kind::Count),
    req("refills_allowed", Kind::Count),
    req("authored", Kind::Text(TIME)),
    opt("override_reason", Kind::Text(NOTE)),
];
const ALLERGY: &[Field] = clinical![
    req("substance_code", Kind::Text(CODE)),
    req("substance", Kind::Text(DISPLAY)),
    req("reaction", Kind::Text(NOTE)),
    req("severity", Kind::Text(CODE)),
];
const IMMUNIZATION: &[Field] = clinical![
    req("cvx", Kind::Text(CODE)),
    req("vaccine", Kind::Text(DISPLAY)),
    req("occurrence", Kind::Text(TIME))
];
const APPOINTMENT: &[Field] = clinical![
    req("start", Kind::Text(TIME)),
    req("reason", Kind::Text(NOTE)),
    opt("preferred", Kind::Text(DISPLAY)),
];
const REFILL_REQUEST: &[Field] = &[
    req("prescription", Kind::Uuid),
    req("clinic", Kind::Uuid),
    req("requested_by", Kind::Uuid),
    req("requested_at", Kind::Text(TIME)),
    req("note", Kind::Text(NOTE)),
    req("status", Kind::Text(CODE)),
    opt("decided_by", Kind::Uuid),
    opt("decided_at", Kind::Text(TIME)),
    opt("decision_note", Kind::Text(NOTE)),
];
const MESSAGE: &[Field] = &[
    req("author", Kind::Uuid),
    req("author_name", Kind::Text(NAME)),
    req("side", Kind::Text(CODE)),
    req("sent_at", Kind::Text(TIME)),
    req("body", Kind::Text(BODY)),
    opt("read_at", Kind::Text(TIME)),
    opt("read_by", Kind::Uuid),
    opt("topic", Kind::Text(TOPIC)),
    opt("in_response_to", Kind::Uuid),
    opt("about", Kind::Uuid),
];

const TASK: &[Field] = &[
    req("focus", Kind::Uuid),
    req("focus_kind", Kind::Text(CODE)),
    req("status", Kind::Text(CODE)),
    opt("owner", Kind::Uuid),
    opt("owner_name", Kind::Text(NAME)),
    req("provenance", Kind::Map(PROVENANCE)),
    opt("status_by", Kind::Uuid),
    opt("status_at", Kind::Text(TIME)),
];

/// The patient's demographics (a map at the root, not a collection).
pub const DEMOGRAPHICS: &[Field] = &[
    opt("family", Kind::Text(NAME)),
    opt("given", Kind::Text(NAME)),
    opt("birth_date", Kind::Text(TIME)),
    opt("phone", Kind::Text(CONTACT)),
    opt("email", Kind::Text(CONTACT)),
];

/// The fields of the entries in `collection`.
pub fn entry_fields(collection: Collection) -> &'static [Field] {
    match collection {
        Collection::Reports => REPORT,
        Collection::Observations => OBSERVATION,
        Collection::Prescriptions => PRESCRIPTION,
        Collection::Allergies => ALLERGY,
        Collection::Immunizations => IMMUNIZATION,
        Collection::Appointments => APPOINTMENT,
        Collection::RefillRequests => REFILL_REQUEST,
        Collection::Messages => MESSAGE,
        Collection::Tasks => TASK,
    }
}

pub fn find(fields: &'static [Field], name: &str) -> Option<&'static Field> {
    fields.iter().find(|f| f.name == name)
}

/// Why a value does not fit its field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misfit {
    WrongType,
    TooLong(usize),
}

impl Field {
    /// Whether a scalar may be stored in this field.
    pub fn admits(&self, value: &ScalarValue) -> Result<(), Misfit> {
        match (self.kind, value) {
            (_, ScalarValue::Null) if self.optional => Ok(()),
            (Kind::Text(max), ScalarValue::Str(s)) => {
                // Bytes bound characters from above: count only when needed.
                if s.len() <= max || s.chars().count() <= max {
                    Ok(())
                } else {
                    Err(Misfit::TooLong(max))
                }
            }
            (Kind::Uuid, ScalarValue::Str(s)) if s.parse::<crate::ids::EntryId>().is_ok() => Ok(()),
            (Kind::Number, ScalarValue::F64(n)) if n.is_finite() => Ok(()),
            (Kind::Number, ScalarValue::Int(_) | ScalarValue::Uint(_)) => Ok(()),
            (Kind::Count, ScalarValue::Uint(n)) if *n <= u64::from(u32::MAX) => Ok(()),
            (Kind::Count, ScalarValue::Int(n)) if (0..=i64::from(u32::MAX)).contains(n) => Ok(()),
            _ => Err(Misfit::WrongType),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ObjType, ROOT, ReadDoc};

    use super::*;
    use crate::record::{self, Entry};
    use crate::schema::*;

    /// Every field the app writes for an entry is in the table with a type
    /// that admits what it writes, and every required field is written.
    #[test]
    fn the_table_matches_what_the_schema_writes() {
        fn check<E: Entry>(entry: &E) {
            let mut doc = AutoCommit::new();
            doc.put_object(ROOT, E::COLLECTION.code(), ObjType::Map).unwrap();
            let id = crate::EntryId::mint();
            record::add(&mut doc, id, entry).unwrap();
            let coll = doc.get(ROOT, E::COLLECTION.code()).unwrap().unwrap().1;
            let obj = doc.get(&coll, id.to_string()).unwrap().unwrap().1;
            let fields = entry_fields(E::COLLECTION);
            walk(&doc, &obj, fields);
        }
        fn walk(doc: &AutoCommit, obj: &automerge::ObjId, fields: &'static [Field]) {
            let written: BTreeSet<String> = doc.keys(obj).collect();
            for key in &written {
                let field =
                    find(fields, key).unwrap_or_else(|| panic!("{key} is not in the table"));
                match (field.kind, doc.get(obj, key).unwrap().unwrap()) {
                    (Kind::Map(inner), (automerge::Value::Object(ObjType::Map), child)) => {
                        walk(doc, &child, inner)
                    }
                    (_, (automerge::Value::Scalar(s), _)) => {
                        field.admits(&s).unwrap_or_else(|e| panic!("{key}: {e:?}"))
                    }
                    other => panic!("{key}: {other:?}"),
                }
            }
            for field in fields.iter().filter(|f| !f.optional) {
                assert!(written.contains(field.name), "{} is required but not written", field.name);
            }
        }
        let clinic = crate::ClinicId::mint();
        let user = crate::UserId::mint();
        let provenance = Provenance {
            clinic,
            clinic_name: "C".into(),
            recorder: user,
            recorder_name: "R".into(),
            recorded: "t".into(),
        };
        check(&Observation {
            report: Some(crate::EntryId::mint()),
            loinc: "1".into(),
            display: "d".into(),
            value_quantity: Some(1.5),
            value_string: None,
            unit: Some("%".into()),
            reference_low: Some(1.0),
            reference_high: None,
            effective: "t".into(),
            status: crate::status::ResultStatus::Final,
            replaces: None,
            provenance: provenance.clone(),
            status_reason: None,
            status_by: None,
            status_at: None,
            interpretation: Some("HH".into()),
        });
        check(&Prescription {
            rxnorm: "1".into(),
            display: "d".into(),
            dosage: "x".into(),
            quantity: 30,
            refills_allowed: 2,
            authored: "t".into(),
            status: crate::status::PrescriptionStatus::Active,
            provenance,
            status_reason: None,
            status_by: None,
            status_at: None,
            override_reason: Some("reviewed".into()),
        });
        check(&Message::new(user, "A", crate::status::Side::Patient, "t", "hi"));
    }

    #[test]
    fn values_are_typed_and_bounded() {
        let body = find(MESSAGE, "body").unwrap();
        assert_eq!(
            body.admits(&ScalarValue::Str("x".repeat(BODY + 1).into())),
            Err(Misfit::TooLong(BODY))
        );
        assert_eq!(body.admits(&ScalarValue::Str("é".repeat(BODY).into())), Ok(()));
        assert_eq!(body.admits(&ScalarValue::Bytes(vec![1])), Err(Misfit::WrongType));
        assert_eq!(body.admits(&ScalarValue::Null), Err(Misfit::WrongType));
        let read_by = find(MESSAGE, "read_by").unwrap();
        assert_eq!(read_by.admits(&ScalarValue::Null), Ok(()));
        let upper = crate::UserId::mint().to_string().to_uppercase();
        assert_eq!(read_by.admits(&ScalarValue::Str(upper.into())), Err(Misfit::WrongType));
        assert_eq!(
            find(PRESCRIPTION, "quantity").unwrap().admits(&ScalarValue::counter(1)),
            Err(Misfit::WrongType)
        );
    }
}
