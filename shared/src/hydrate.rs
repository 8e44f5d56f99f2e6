//! Hydration of the schema's entries, written by hand.
//!
//! autosurgeon's derived `Hydrate` compiles, for every entry type and every
//! document type it is read from, a copy of its generic reads of each field
//! (2.5 to 3 KB of WASM per entry type). Here the reads are compiled once:
//! [`Fields`] reads one map's fields by name through an object-safe [`Get`],
//! and each type is built by a plain function that calls it field by field
//! (`schema`'s `hydrate_by_hand!`).
//!
//! What is accepted is exactly what the derived code accepted, field by field
//! (`tests::same_outcome_as_derived` compares the two on every kind of value):
//! - a required text, id or code: a string (an id in its canonical spelling,
//!   a code one of its type's);
//! - a number (`f64`): a float only; a count (`u32`): an unsigned integer that
//!   fits, never a signed one;
//! - an `Option`: null is `None`; a missing field is refused, unless the field
//!   came after entries were first stored (`late_*`: missing is `None`);
//! - a nested map (provenance): a map or table;
//! - keys the type does not read are ignored.
//!
//! The first failure is remembered and the rest of the map is not read, so
//! building an entry is a straight run of calls with no branch per field.

use automerge::{AutomergeError, ObjId, ObjType, ScalarValue, Value};
use autosurgeon::{HydrateError, ReadDoc};
use uuid::Uuid;

/// The one read hydration needs, object-safe so that the code reading fields
/// is compiled once, whatever document type it reads from.
pub(crate) trait Get {
    fn get_at(
        &self,
        obj: &ObjId,
        prop: automerge::Prop,
    ) -> Result<Option<(Value<'_>, ObjId)>, AutomergeError>;
}

impl<D: ReadDoc> Get for D {
    fn get_at(
        &self,
        obj: &ObjId,
        prop: automerge::Prop,
    ) -> Result<Option<(Value<'_>, ObjId)>, AutomergeError> {
        ReadDoc::get(self, obj, prop)
    }
}

/// The fields of one map, read by name.
pub(crate) struct Fields<'a> {
    doc: &'a dyn Get,
    obj: ObjId,
    error: Option<HydrateError>,
}

impl<'a> Fields<'a> {
    fn fail(&mut self, error: HydrateError) {
        if self.error.is_none() {
            self.error = Some(error);
        }
    }

    /// Field names only: values are patient data.
    fn unexpected(&mut self, key: &str) {
        self.fail(HydrateError::unexpected("a value of the field's type", format!("field {key}")));
    }

    /// The field's value; `None` once anything failed.
    fn value(&mut self, key: &str) -> Option<Option<(Value<'a>, ObjId)>> {
        if self.error.is_some() {
            return None;
        }
        let doc = self.doc;
        match doc.get_at(&self.obj, key.into()) {
            Ok(found) => Some(found),
            Err(error) => {
                self.fail(error.into());
                None
            }
        }
    }

    /// A scalar field: `None` when it is null and `optional`, or missing and
    /// `late`; otherwise what `pick` makes of it, or a failure.
    fn scalar<T>(
        &mut self,
        key: &str,
        optional: bool,
        late: bool,
        pick: fn(&ScalarValue) -> Option<T>,
    ) -> Option<T> {
        match self.value(key)? {
            None if late => return None,
            Some((Value::Scalar(value), _)) => match value.as_ref() {
                ScalarValue::Null if optional => return None,
                value => {
                    if let Some(picked) = pick(value) {
                        return Some(picked);
                    }
                }
            },
            _ => {}
        }
        self.unexpected(key);
        None
    }

    pub(crate) fn text(&mut self, key: &str) -> String {
        self.scalar(key, false, false, text).unwrap_or_default()
    }

    pub(crate) fn opt_text(&mut self, key: &str) -> Option<String> {
        self.scalar(key, true, false, text)
    }

    /// An optional text added after entries were first stored: older
    /// entries lack it.
    pub(crate) fn late_text(&mut self, key: &str) -> Option<String> {
        self.scalar(key, true, true, text)
    }

    pub(crate) fn id(&mut self, key: &str) -> Uuid {
        self.scalar(key, false, false, id).unwrap_or_default()
    }

    pub(crate) fn opt_id(&mut self, key: &str) -> Option<Uuid> {
        self.scalar(key, true, false, id)
    }

    /// An optional id added after entries were first stored.
    pub(crate) fn late_id(&mut self, key: &str) -> Option<Uuid> {
        self.scalar(key, true, true, id)
    }

    pub(crate) fn opt_number(&mut self, key: &str) -> Option<f64> {
        self.scalar(key, true, false, |value| match value {
            ScalarValue::F64(number) => Some(*number),
            _ => None,
        })
    }

    pub(crate) fn count(&mut self, key: &str) -> u32 {
        self.scalar(key, false, false, |value| match value {
            ScalarValue::Uint(count) => u32::try_from(*count).ok(),
            _ => None,
        })
        .unwrap_or_default()
    }

    /// A code of a `status::code_enum!` type; `fallback` stands in for it
    /// once hydration has failed.
    pub(crate) fn code<T>(&mut self, key: &str, parse: fn(&str) -> Option<T>, fallback: T) -> T {
        let code = self.text(key);
        match parse(&code) {
            Some(parsed) => parsed,
            None => {
                self.unexpected(key);
                fallback
            }
        }
    }

    /// A nested map, built by `build`.
    pub(crate) fn map<T>(&mut self, key: &str, build: fn(&mut Fields<'a>) -> T) -> T {
        let obj = match self.value(key) {
            Some(Some((Value::Object(ObjType::Map | ObjType::Table), obj))) => Some(obj),
            _ => None,
        };
        if obj.is_none() {
            self.unexpected(key);
        }
        let mut inner = Fields { doc: self.doc, obj: obj.unwrap_or(automerge::ROOT), error: None };
        if self.error.is_some() {
            // Read nothing more: stand-in values only.
            inner.error = Some(HydrateError::unexpected("", String::new()));
        }
        let built = build(&mut inner);
        if let Some(error) = inner.error {
            self.fail(error);
        }
        built
    }
}

fn text(value: &ScalarValue) -> Option<String> {
    match value {
        ScalarValue::Str(text) => Some(text.to_string()),
        _ => None,
    }
}

fn id(value: &ScalarValue) -> Option<Uuid> {
    match value {
        ScalarValue::Str(text) => crate::ids::parse_canonical(text).ok(),
        _ => None,
    }
}

/// Builds a `T` from the map `obj`.
pub(crate) fn map<T>(
    doc: &dyn Get,
    obj: &ObjId,
    build: fn(&mut Fields<'_>) -> T,
) -> Result<T, HydrateError> {
    let mut fields = Fields { doc, obj: obj.clone(), error: None };
    let built = build(&mut fields);
    match fields.error {
        None => Ok(built),
        Some(error) => Err(error),
    }
}

/// Builds a `T` from the map at `prop` of `obj`: anything but a map (or
/// table) there, or nothing, is refused.
pub(crate) fn at<T>(
    doc: &dyn Get,
    obj: &ObjId,
    prop: automerge::Prop,
    build: fn(&mut Fields<'_>) -> T,
) -> Result<T, HydrateError> {
    match doc.get_at(obj, prop)? {
        Some((Value::Object(ObjType::Map | ObjType::Table), inner)) => map(doc, &inner, build),
        _ => Err(HydrateError::unexpected("a map", "something else".to_owned())),
    }
}

/// Implements `autosurgeon::Hydrate` for each type with its hand-written
/// build function: only these two calls are compiled per document type.
macro_rules! hydrate_by_hand {
    ($($ty:ty => $build:path),+ $(,)?) => {$(
        impl autosurgeon::Hydrate for $ty {
            fn hydrate<D: autosurgeon::ReadDoc>(
                doc: &D,
                obj: &automerge::ObjId,
                prop: autosurgeon::Prop<'_>,
            ) -> Result<Self, autosurgeon::HydrateError> {
                $crate::hydrate::at(doc, obj, (&prop).into(), $build)
            }

            fn hydrate_map<D: autosurgeon::ReadDoc>(
                doc: &D,
                obj: &automerge::ObjId,
            ) -> Result<Self, autosurgeon::HydrateError> {
                $crate::hydrate::map(doc, obj, $build)
            }
        }
    )+};
}
pub(crate) use hydrate_by_hand;

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ROOT, ReadDoc, ScalarValue};
    use autosurgeon::Hydrate;

    use crate::fields::{self, Kind};
    use crate::ids::{ClinicId, EntryId, UserId};
    use crate::read::MapCache;
    use crate::record::{self, Entry};
    use crate::schema;
    use crate::status::*;

    /// The structs as they were, with autosurgeon's derived `Hydrate`: the
    /// reference the hand-written hydration must agree with.
    #[allow(dead_code)]
    mod legacy {
        use autosurgeon::Hydrate;

        use crate::ids::{ClinicId, EntryId, UserId};
        use crate::status::*;

        #[derive(Debug, Hydrate)]
        pub struct Provenance {
            pub clinic: ClinicId,
            pub clinic_name: String,
            pub recorder: UserId,
            pub recorder_name: String,
            pub recorded: String,
        }

        #[derive(Debug, Hydrate)]
        pub struct Report {
            pub loinc: String,
            pub display: String,
            pub effective: String,
            pub status: ResultStatus,
            pub provenance: Provenance,
            pub status_reason: Option<String>,
            pub status_by: Option<UserId>,
            pub status_at: Option<String>,
        }

        #[derive(Debug, Hydrate)]
        pub struct Observation {
            pub report: Option<EntryId>,
            pub loinc: String,
            pub display: String,
            pub value_quantity: Option<f64>,
            pub value_string: Option<String>,
            pub unit: Option<String>,
            pub reference_low: Option<f64>,
            pub reference_high: Option<f64>,
            pub effective: String,
            pub status: ResultStatus,
            pub replaces: Option<EntryId>,
            pub provenance: Provenance,
            pub status_reason: Option<String>,
            pub status_by: Option<UserId>,
            pub status_at: Option<String>,
            #[autosurgeon(missing = "Default::default")]
            pub interpretation: Option<String>,
        }

        #[derive(Debug, Hydrate)]
        pub struct Prescription {
            pub rxnorm: String,
            pub display: String,
            pub dosage: String,
            pub quantity: u32,
            pub refills_allowed: u32,
            pub authored: String,
            pub status: PrescriptionStatus,
            pub provenance: Provenance,
            pub status_reason: Option<String>,
            pub status_by: Option<UserId>,
            pub status_at: Option<String>,
            #[autosurgeon(missing = "Default::default")]
            pub override_reason: Option<String>,
        }

        #[derive(Debug, Hydrate)]
        pub struct Allergy {
            pub substance_code: String,
            pub substance: String,
            pub reaction: String,
            pub severity: Severity,
            pub status: AllergyStatus,
            pub provenance: Provenance,
            pub status_reason: Option<String>,
            pub status_by: Option<UserId>,
            pub status_at: Option<String>,
        }

        #[derive(Debug, Hydrate)]
        pub struct Immunization {
            pub cvx: String,
            pub vaccine: String,
            pub occurrence: String,
            pub status: ImmunizationStatus,
            pub provenance: Provenance,
            pub status_reason: Option<String>,
            pub status_by: Option<UserId>,
            pub status_at: Option<String>,
        }

        #[derive(Debug, Hydrate)]
        pub struct Appointment {
            pub start: String,
            pub reason: String,
            pub status: AppointmentStatus,
            pub provenance: Provenance,
            pub status_reason: Option<String>,
            pub status_by: Option<UserId>,
            pub status_at: Option<String>,
            #[autosurgeon(missing = "Default::default")]
            pub preferred: Option<String>,
        }

        #[derive(Debug, Hydrate)]
        pub struct Demographics {
            #[autosurgeon(missing = "Default::default")]
            pub family: Option<String>,
            #[autosurgeon(missing = "Default::default")]
            pub given: Option<String>,
            #[autosurgeon(missing = "Default::default")]
            pub birth_date: Option<String>,
            #[autosurgeon(missing = "Default::default")]
            pub phone: Option<String>,
            #[autosurgeon(missing = "Default::default")]
            pub email: Option<String>,
        }

        #[derive(Debug, Hydrate)]
        pub struct RefillRequest {
            pub prescription: EntryId,
            pub clinic: ClinicId,
            pub requested_by: UserId,
            pub requested_at: String,
            pub note: String,
            pub status: RefillStatus,
            pub decided_by: Option<UserId>,
            pub decided_at: Option<String>,
            pub decision_note: Option<String>,
        }

        #[derive(Debug, Hydrate)]
        pub struct Message {
            pub author: UserId,
            pub author_name: String,
            pub side: Side,
            pub sent_at: String,
            pub body: String,
            pub read_at: Option<String>,
            pub read_by: Option<UserId>,
            #[autosurgeon(missing = "Default::default")]
            pub topic: Option<String>,
            #[autosurgeon(missing = "Default::default")]
            pub in_response_to: Option<EntryId>,
            #[autosurgeon(missing = "Default::default")]
            pub about: Option<EntryId>,
        }
    }

    /// Every kind of value a field can hold in a document.
    #[derive(Clone, Debug)]
    enum Put {
        Delete,
        Scalar(ScalarValue),
        Object(automerge::ObjType),
    }

    fn puts() -> Vec<Put> {
        let mut puts = vec![Put::Delete];
        let mut scalars = vec![
            ScalarValue::Null,
            ScalarValue::Str("x".into()),
            ScalarValue::Str("".into()),
            ScalarValue::Str(UserId::mint().to_string().into()),
            ScalarValue::Str(UserId::mint().to_string().to_uppercase().into()),
            ScalarValue::F64(1.5),
            ScalarValue::F64(-0.0),
            ScalarValue::F64(f64::NAN),
            ScalarValue::F64(f64::INFINITY),
            ScalarValue::Int(3),
            ScalarValue::Int(-1),
            ScalarValue::Uint(3),
            ScalarValue::Uint(u64::from(u32::MAX)),
            ScalarValue::Uint(u64::from(u32::MAX) + 1),
            ScalarValue::Boolean(true),
            ScalarValue::Bytes(vec![1, 2]),
            ScalarValue::counter(2),
            ScalarValue::Timestamp(5),
        ];
        let codes = [
            ResultStatus::ALL.iter().map(|c| c.code()).collect::<Vec<_>>(),
            PrescriptionStatus::ALL.iter().map(|c| c.code()).collect(),
            AllergyStatus::ALL.iter().map(|c| c.code()).collect(),
            Severity::ALL.iter().map(|c| c.code()).collect(),
            ImmunizationStatus::ALL.iter().map(|c| c.code()).collect(),
            AppointmentStatus::ALL.iter().map(|c| c.code()).collect(),
            RefillStatus::ALL.iter().map(|c| c.code()).collect(),
            Side::ALL.iter().map(|c| c.code()).collect(),
        ];
        scalars.extend(codes.iter().flatten().map(|c| ScalarValue::Str((*c).into())));
        puts.extend(scalars.into_iter().map(Put::Scalar));
        puts.extend(
            [automerge::ObjType::Map, automerge::ObjType::List, automerge::ObjType::Text]
                .map(Put::Object),
        );
        puts
    }

    fn put(doc: &mut AutoCommit, obj: &automerge::ObjId, key: &str, value: &Put) {
        match value {
            Put::Delete => {
                if doc.get(obj, key).unwrap().is_some() {
                    doc.delete(obj, key).unwrap()
                }
            }
            Put::Scalar(s) => doc.put(obj, key, s.clone()).unwrap(),
            Put::Object(t) => drop(doc.put_object(obj, key, *t).unwrap()),
        }
    }

    /// Hydrates the map at `obj`/`key` of `doc` with the derived `Old` and
    /// the hand-written `New`, through every way the code reads documents,
    /// and says whether they agree (same outcome, same value).
    fn agree<Old: Hydrate + std::fmt::Debug, New: Hydrate + std::fmt::Debug>(
        doc: &mut AutoCommit,
        obj: &automerge::ObjId,
        key: &str,
    ) -> bool {
        let old: Option<Old> = autosurgeon::hydrate_prop(doc, obj, key).ok();
        let new: Option<New> = autosurgeon::hydrate_prop(doc, obj, key).ok();
        let old = format!("{old:?}");
        let automerge = doc.document();
        let cache = MapCache::new(automerge);
        let by_cache: Option<New> = autosurgeon::hydrate_prop(&cache, obj, key).ok();
        let by_doc: Option<New> = autosurgeon::hydrate_prop(automerge, obj, key).ok();
        let by_map: Option<New> = match autosurgeon::ReadDoc::get(&cache, obj, key).unwrap() {
            Some((automerge::Value::Object(automerge::ObjType::Map), map)) => {
                New::hydrate_map(&cache, &map).ok()
            }
            _ => autosurgeon::hydrate_prop(&cache, obj, key).ok(),
        };
        [new, by_cache, by_doc, by_map].iter().all(|new| format!("{new:?}") == old)
    }

    /// Puts every kind of value into every field (and nested field, and one
    /// the type does not have) of `entry` and checks the hand-written
    /// hydration accepts and reads exactly what the derived one did.
    fn check<Old: Hydrate + std::fmt::Debug, New: Entry + std::fmt::Debug>(entry: &New) -> usize {
        let mut doc = AutoCommit::new();
        let coll = doc.put_object(ROOT, New::COLLECTION.code(), automerge::ObjType::Map).unwrap();
        let id = EntryId::mint().to_string();
        record::add(&mut doc, id.parse().unwrap(), entry).unwrap();
        assert!(agree::<Old, New>(&mut doc, &coll, &id));
        assert!(record::get::<New, _>(&doc, id.parse().unwrap()).is_some());
        let obj = doc.get(&coll, &id).unwrap().unwrap().1;
        let mut checked = 0;
        let mut targets: Vec<(Option<&str>, &str)> =
            fields::entry_fields(New::COLLECTION).iter().map(|f| (None, f.name)).collect();
        for field in fields::entry_fields(New::COLLECTION) {
            if let Kind::Map(inner) = field.kind {
                targets.extend(inner.iter().map(|f| (Some(field.name), f.name)));
                targets.push((Some(field.name), "extra"));
            }
        }
        targets.push((None, "extra"));
        for (parent, key) in targets {
            for value in puts() {
                let mut fork = doc.fork();
                let target = match parent {
                    Some(parent) => fork.get(&obj, parent).unwrap().unwrap().1,
                    None => obj.clone(),
                };
                put(&mut fork, &target, key, &value);
                assert!(
                    agree::<Old, New>(&mut fork, &coll, &id),
                    "{:?} {parent:?}/{key} = {value:?}",
                    New::COLLECTION
                );
                checked += 1;
            }
        }
        // The entry itself replaced by something else, or missing.
        for value in puts() {
            let mut fork = doc.fork();
            put(&mut fork, &coll, &id, &value);
            assert!(agree::<Old, New>(&mut fork, &coll, &id), "entry = {value:?}");
        }
        checked
    }

    fn provenance() -> schema::Provenance {
        schema::Provenance {
            clinic: ClinicId::mint(),
            clinic_name: "Clinic".into(),
            recorder: UserId::mint(),
            recorder_name: "Dr R".into(),
            recorded: "2026-01-02T03:04:05Z".into(),
        }
    }

    #[test]
    fn same_outcome_as_derived() {
        let mut checked = 0;
        for full in [true, false] {
            let some = |s: &str| full.then(|| s.to_owned());
            let id = || full.then(EntryId::mint);
            let user = || full.then(UserId::mint);
            let number = |n: f64| full.then_some(n);
            checked += check::<legacy::Report, _>(&schema::Report {
                loinc: "2345-7".into(),
                display: "Glucose".into(),
                effective: "2026-01-01".into(),
                status: ResultStatus::Final,
                provenance: provenance(),
                status_reason: some("typo"),
                status_by: user(),
                status_at: some("2026-01-03"),
            });
            checked += check::<legacy::Observation, _>(&schema::Observation {
                report: id(),
                loinc: "2345-7".into(),
                display: "Glucose".into(),
                value_quantity: number(5.5),
                value_string: some("high"),
                unit: some("mmol/L"),
                reference_low: number(3.9),
                reference_high: number(7.8),
                effective: "2026-01-01".into(),
                status: ResultStatus::Amended,
                replaces: id(),
                provenance: provenance(),
                status_reason: some("typo"),
                status_by: user(),
                status_at: some("2026-01-03"),
                interpretation: some("HH"),
            });
            checked += check::<legacy::Prescription, _>(&schema::Prescription {
                rxnorm: "197361".into(),
                display: "Amlodipine".into(),
                dosage: "once a day".into(),
                quantity: 30,
                refills_allowed: 2,
                authored: "2026-01-01".into(),
                status: PrescriptionStatus::Active,
                provenance: provenance(),
                status_reason: some("typo"),
                status_by: user(),
                status_at: some("2026-01-03"),
                override_reason: some("reviewed"),
            });
            checked += check::<legacy::Allergy, _>(&schema::Allergy {
                substance_code: "7980".into(),
                substance: "Penicillin".into(),
                reaction: "rash".into(),
                severity: Severity::ALL[1],
                status: AllergyStatus::ALL[0],
                provenance: provenance(),
                status_reason: some("typo"),
                status_by: user(),
                status_at: some("2026-01-03"),
            });
            checked += check::<legacy::Immunization, _>(&schema::Immunization {
                cvx: "140".into(),
                vaccine: "Influenza".into(),
                occurrence: "2026-01-01".into(),
                status: ImmunizationStatus::ALL[0],
                provenance: provenance(),
                status_reason: some("typo"),
                status_by: user(),
                status_at: some("2026-01-03"),
            });
            checked += check::<legacy::Appointment, _>(&schema::Appointment {
                start: "2026-01-01T09:00:00Z".into(),
                reason: "check-up".into(),
                status: AppointmentStatus::ALL[0],
                provenance: provenance(),
                status_reason: some("typo"),
                status_by: user(),
                status_at: some("2026-01-03"),
                preferred: some("mornings"),
            });
            checked += check::<legacy::RefillRequest, _>(&schema::RefillRequest {
                prescription: EntryId::mint(),
                clinic: ClinicId::mint(),
                requested_by: UserId::mint(),
                requested_at: "2026-01-01".into(),
                note: "please".into(),
                status: RefillStatus::ALL[0],
                decided_by: user(),
                decided_at: some("2026-01-02"),
                decision_note: some("ok"),
            });
            checked += check::<legacy::Message, _>(&schema::Message {
                author: UserId::mint(),
                author_name: "Pat".into(),
                side: Side::ALL[0],
                sent_at: "2026-01-01".into(),
                body: "hello".into(),
                read_at: some("2026-01-02"),
                read_by: user(),
                topic: some("Knee"),
                in_response_to: Some(EntryId::mint()),
                about: Some(EntryId::mint()),
            });
        }
        assert!(checked > 5_000, "{checked}");
    }

    #[test]
    fn demographics_same_outcome_as_derived() {
        let mut doc = AutoCommit::new();
        let map = doc.put_object(ROOT, schema::DEMOGRAPHICS, automerge::ObjType::Map).unwrap();
        assert!(agree::<legacy::Demographics, schema::Demographics>(
            &mut doc,
            &ROOT,
            schema::DEMOGRAPHICS
        ));
        for field in fields::DEMOGRAPHICS.iter().map(|f| f.name).chain(["extra"]) {
            for value in puts() {
                for filled in [false, true] {
                    let mut fork = doc.fork();
                    if filled {
                        for other in fields::DEMOGRAPHICS {
                            fork.put(&map, other.name, "x").unwrap();
                        }
                    }
                    put(&mut fork, &map, field, &value);
                    assert!(
                        agree::<legacy::Demographics, schema::Demographics>(
                            &mut fork,
                            &ROOT,
                            schema::DEMOGRAPHICS
                        ),
                        "{field} = {value:?}"
                    );
                }
            }
        }
        for value in puts() {
            let mut fork = doc.fork();
            put(&mut fork, &ROOT, schema::DEMOGRAPHICS, &value);
            assert!(
                agree::<legacy::Demographics, schema::Demographics>(
                    &mut fork,
                    &ROOT,
                    schema::DEMOGRAPHICS
                ),
                "demographics = {value:?}"
            );
        }
    }
}
