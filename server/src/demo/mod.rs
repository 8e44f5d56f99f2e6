//! A realistic demo data set: two clinics, two providers, an admin and two
//! patients with five years of history, one module per patient. Fixed ids
//! make seeding idempotent; a fixed random seed gives every demo the same
//! values.

pub mod fixtures;
mod james;
mod maria;

use automerge::{ActorId, AutoCommit};
use chrono::Utc;
use shared::record;
use shared::schema::DocKind;
use shared::{ClinicId, PatientId, UserId, check_change};
use uuid::Uuid;

use crate::Error;
use crate::storage::{NewUser, Store};
use fixtures::{Author, Rng};
use james::JAMES;
use maria::MARIA;
use shared::api::UserRole;

const RIVERSIDE: ClinicId =
    ClinicId::from_uuid(Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0c01));
const NORTHGATE: ClinicId =
    ClinicId::from_uuid(Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0c02));
/// The demo clinics' time zones (`zone`): their "today" and appointment
/// times.
const RIVERSIDE_ZONE: chrono_tz::Tz = chrono_tz::America::New_York;
const NORTHGATE_ZONE: chrono_tz::Tz = chrono_tz::America::Chicago;

/// A demo user, as printed for the operator.
#[derive(Clone, Debug)]
pub struct DemoUser {
    pub id: UserId,
    pub name: &'static str,
    pub role: UserRole,
    pub patient: Option<PatientId>,
    pub clinics: &'static [ClinicId],
}

impl DemoUser {
    /// The user as the author of entries (clinic staff with their first clinic).
    pub fn author(&self) -> Author {
        Author {
            user: self.id,
            name: self.name.to_owned(),
            clinic: self.clinics.first().map(|&c| (c, clinic_name(c).to_owned())),
        }
    }
}

pub fn users() -> Vec<DemoUser> {
    let user = |n: u128, name, role, patient, clinics| DemoUser {
        id: UserId::from_uuid(Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0000 | n)),
        name,
        role,
        patient,
        clinics,
    };
    vec![
        user(0xb01, "Jordan Lee", UserRole::Admin, None, &[RIVERSIDE]),
        user(0xb02, "Dr. Amara Okafor", UserRole::Provider, None, &[RIVERSIDE]),
        user(0xb03, "Dr. Lukas Brandt", UserRole::Provider, None, &[NORTHGATE]),
        user(0xb04, "Maria Santos", UserRole::Patient, Some(MARIA), &[]),
        user(0xb05, "James Whitfield", UserRole::Patient, Some(JAMES), &[]),
    ]
}

/// Seeds the demo data unless it is there already. Returns the demo users.
pub async fn seed(store: &Store) -> Result<Vec<DemoUser>, Error> {
    let users = users();
    if store.clinic_name(RIVERSIDE).await?.is_some() {
        return Ok(users);
    }
    let now = Utc::now();
    let now_ms = now.timestamp_millis();
    store.create_clinic(RIVERSIDE, "Riverside Family Practice", now_ms).await?;
    store.create_clinic(NORTHGATE, "Northgate Diabetes & Endocrine Clinic", now_ms).await?;
    store.set_clinic_time_zone(RIVERSIDE, RIVERSIDE_ZONE.name()).await?;
    store.set_clinic_time_zone(NORTHGATE, NORTHGATE_ZONE.name()).await?;
    store.create_patient(MARIA, now_ms).await?;
    store.create_patient(JAMES, now_ms).await?;
    for u in &users {
        let new = NewUser {
            id: u.id,
            display_name: u.name.to_owned(),
            role: u.role,
            patient: u.patient,
            may_message: false,
            clinics: u.clinics.to_vec(),
        };
        store.create_user(&new, now_ms).await?;
    }
    store.grant_consent(MARIA, RIVERSIDE, now_ms).await?;
    store.grant_consent(MARIA, NORTHGATE, now_ms).await?;
    store.grant_consent(JAMES, RIVERSIDE, now_ms).await?;

    let [_, okafor, brandt, maria, james] = [0, 1, 2, 3, 4].map(|i| &users[i]);
    // One generator for both patients, in this order, so values never change.
    let mut rng = Rng(0x5eed);
    let mut seeder = Seeder { store, now: now_ms };
    let writers = maria::Writers { maria, okafor, brandt };
    maria::seed(&mut seeder, writers, now, &mut rng).await?;
    james::seed(&mut seeder, james, okafor, now, &mut rng).await?;
    Ok(users)
}

/// Writes documents as a given demo user, through the same write policy that
/// guards sync, and stores each as a snapshot.
struct Seeder<'a> {
    store: &'a Store,
    /// When the documents are written (ms).
    now: i64,
}

impl Seeder<'_> {
    async fn write(
        &mut self,
        kind: DocKind,
        user: &DemoUser,
        edit: impl FnOnce(&mut AutoCommit, &Author) -> Result<(), record::RecordError>,
    ) -> Result<(), Error> {
        let id = self.store.create_document(&kind, self.now).await?;
        let stored = self.store.load_document(id).await?.ok_or(Error::NotFound)?;
        let mut doc = AutoCommit::load(&stored.to_automerge()?.save())
            .map_err(|e| Error::BadRequest(format!("stored document is corrupt: {e}")))?;
        let before = doc.get_heads();
        // One actor per user and document: a server-side "device" of the demo user.
        let actor = ActorId::random();
        self.store.bind_actor(&actor.to_hex_string(), user.id, self.now).await?;
        doc.set_actor(actor);
        edit(&mut doc, &user.author()).map_err(|e| Error::BadRequest(format!("demo data: {e}")))?;
        let principal =
            self.store.user(user.id).await?.and_then(|u| u.principal()).ok_or(Error::NotFound)?;
        check_change(doc.document(), &before, &kind, &principal).map_err(|denial| {
            Error::BadRequest(format!("demo data breaks the write policy: {denial}"))
        })?;
        self.store.compact_document(id, &doc.save(), stored.seq, self.now).await?;
        // The patient list and work queue, as `Hub::commit` keeps them.
        let index = crate::sync::summary::summarize(kind, doc.document());
        self.store.write_index(&index, self.now).await?;
        Ok(())
    }
}

/// The name the demo data set gives one of its clinics.
pub fn clinic_name(clinic: ClinicId) -> &'static str {
    if clinic == RIVERSIDE {
        "Riverside Family Practice"
    } else {
        "Northgate Diabetes & Endocrine Clinic"
    }
}

/// Writes one change to a document on a running server as a demo user, as a
/// sync connection would (tools that add to a running demo, such as the
/// benchmarks' long history, use it): checked by the write policy, stored as one chunk,
/// installed as the canonical copy and announced to connected replicas.
pub async fn write_live(
    hub: &crate::sync::Hub,
    kind: DocKind,
    user: &DemoUser,
    edit: impl FnOnce(&mut AutoCommit, &Author) -> Result<(), record::RecordError>,
) -> Result<(), Error> {
    let id = kind.doc_id();
    let store = hub.store();
    let mut locked: std::collections::BTreeMap<_, _> =
        hub.lock_all([id]).await?.into_iter().collect();
    let canonical = locked.get(&id).and_then(|guard| guard.as_ref()).ok_or(Error::NotFound)?;
    let mut doc = AutoCommit::load(&canonical.doc().save())
        .map_err(|e| Error::BadRequest(format!("stored document is corrupt: {e}")))?;
    let before = doc.get_heads();
    let actor = ActorId::random();
    store.bind_actor(&actor.to_hex_string(), user.id, hub.clock().now_ms()).await?;
    doc.set_actor(actor);
    edit(&mut doc, &user.author()).map_err(|e| Error::BadRequest(format!("demo data: {e}")))?;
    let principal =
        store.user(user.id).await?.and_then(|u| u.principal()).ok_or(Error::NotFound)?;
    check_change(doc.document(), &before, &kind, &principal).map_err(|denial| {
        Error::BadRequest(format!("demo data breaks the write policy: {denial}"))
    })?;
    let data = doc.save_after(&before);
    let accepted = crate::sync::Accepted {
        id,
        kind,
        doc: doc.document().clone(),
        data,
        snapshot: false,
        touched: None,
    };
    hub.commit(&mut locked, vec![accepted], &[], None, None).await?;
    Ok(())
}
