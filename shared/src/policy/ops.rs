//! Operations, before they are applied: each one must write into an object
//! and key this principal may write, with a value the schema admits.
//!
//! Objects are found by where they sit in the document: the root, a
//! collection (made by the genesis change), an entry in a collection, an
//! entry's provenance, or the demographics map. Objects made by these same
//! changes are tracked as they are made; an operation into any other object
//! (one hidden by a conflict or deletion, or one this document does not have)
//! is refused. New entries may be made only under a fresh canonical id, with
//! listed, typed fields; existing entries only take the status fields their
//! type allows, from principals allowed to set them, with every value (also
//! one that would lose a conflict) checked against the status before.

#[cfg(feature = "new-maps")]
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};
#[cfg(feature = "new-maps")]
use std::rc::Rc;

use automerge::legacy::{Key, ObjectId, OpId, OpType};
use automerge::{
    ActorId, Automerge, Change, ChangeHash, ObjId, ObjType, Prop, ReadDoc, ScalarValue, Value,
};

use super::{Denial, Principal, Role, Rule, deny, outsider};
use crate::fields::{self, Field, Kind, Misfit};
use crate::ids::{ClinicId, EntryId};
#[cfg(feature = "new-maps")]
use crate::read::Maps;
use crate::schema::DocKind;
use crate::schema::{Collection, DEMOGRAPHICS};
use crate::status::{AppointmentStatus, RefillStatus, Side};

/// What a set of changes does, as found from their operations.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Entries made, as (collection, entry id).
    pub created: BTreeSet<(Collection, String)>,
    /// Existing entries written to.
    pub updated: BTreeSet<(Collection, String)>,
    /// The actor ids that signed the changes.
    pub actors: BTreeSet<ActorId>,
    /// The most entries one of the changes made.
    pub largest_change: usize,
    /// Work items whose owner these changes wrote (checked whole once applied).
    pub assigned: BTreeSet<String>,
    /// The entries and provenance maps the changes made, as written.
    #[cfg(feature = "new-maps")]
    pub(super) new_maps: NewMaps,
}

/// The maps a batch of changes made (new entries and their provenance), as
/// its operations wrote them. Once the changes are applied, these are what
/// the document shows, so the entries can be checked (`entries`) without
/// reading each map back from the document (most of that check's cost in a
/// catch-up). That holds only where nothing else can have written into
/// them, so a map is left to be read from the document when it is not so
/// plainly: a key written twice (which value shows is Automerge's to
/// decide), an object id made twice in the batch, or one `base` already
/// has an object under; and all of them when a change of the batch is not
/// in the document checked (`in_doc`). Nothing in `base` writes into an
/// object it does not have: every operation was checked so when it came
/// (`existing_place`), and Automerge's own edits cannot write one.
/// Only for the server (feature `new-maps`): it costs the web app about
/// 0.7 KB brotli, for local edits of an entry or two.
#[cfg(feature = "new-maps")]
#[derive(Clone, Debug, Default)]
pub(super) struct NewMaps {
    maps: Maps,
    /// The map being written, out of `maps` until another is (`close`):
    /// a change writes one map's keys after another, and finding the map
    /// in `maps` hashed its id (an actor id, with SipHash) for every
    /// operation. A map missing from `maps` is only read from the
    /// document, so one left open costs time, never exactness.
    open: Option<(ObjId, Map)>,
    /// Objects to read from the document after all.
    unread: HashSet<ObjId>,
    /// Each change's last operation and its hash, to find them applied.
    last_ops: Vec<(ObjId, ChangeHash)>,
}

#[cfg(feature = "new-maps")]
impl NewMaps {
    /// The maps, if `after` holds every change they came from.
    pub(super) fn in_doc(&self, after: &Automerge) -> Option<&Maps> {
        // Automerge finds the change holding an operation id; each change
        // of the batch has operations (one without is refused,
        // `Checker::change`), so its last one names it.
        let applied = |(op, hash): &(ObjId, ChangeHash)| after.hash_for_opid(op) == Some(*hash);
        self.last_ops.iter().all(applied).then_some(&self.maps)
    }

    /// A map made by operation `id`.
    fn start(&mut self, base: &Automerge, id: &(u64, ActorId)) {
        // Whether the id was made before is asked of `maps`, so all of them.
        self.close();
        let obj = exid(id);
        let fresh = !self.unread.contains(&obj)
            && !self.maps.contains_key(&obj)
            && base.object_type(&obj).is_err();
        if fresh {
            // Sized for an entry's fields, so that filling it rarely grows it.
            self.maps.insert(obj, HashMap::with_capacity(MAP_FIELDS));
        } else {
            self.maps.remove(&obj);
            self.unread.insert(obj);
        }
    }

    /// Operation `id` wrote `action` at `key` of `obj`.
    fn write(&mut self, obj: &ObjectId, key: String, action: OpType, id: &(u64, ActorId)) {
        let ObjectId::Id(OpId(counter, actor)) = obj else { return };
        let is_open = |(open, _): &(ObjId, Map)| matches!(open, ObjId::Id(c, a, _) if c == counter && a == actor);
        if !self.open.as_ref().is_some_and(is_open) {
            self.close();
            let obj = exid(&(*counter, actor.clone()));
            let Some(map) = self.maps.remove(&obj) else { return };
            self.open = Some((obj, map));
        }
        let Some((_, map)) = &mut self.open else { return };
        let value = match action {
            OpType::Put(value) => Value::Scalar(Cow::Owned(value)),
            OpType::Make(typ) => Value::Object(typ),
            // Refused before it gets here; read from the document anyway.
            _ => return self.forget_open(),
        };
        if map.insert(key, (value, exid(id))).is_some() {
            self.forget_open();
        }
    }

    /// The open map is read from the document after all.
    fn forget_open(&mut self) {
        if let Some((obj, _)) = self.open.take() {
            self.unread.insert(obj);
        }
    }

    /// Puts the open map back into `maps`.
    fn close(&mut self) {
        if let Some((obj, map)) = self.open.take() {
            self.maps.insert(obj, map);
        }
    }
}

/// A map's keys as the operations of a batch wrote them.
#[cfg(feature = "new-maps")]
type Map = HashMap<String, (Value<'static>, ObjId)>;

/// Room made for a new map's keys at once: a new entry writes about a
/// dozen (a lab result 10 to 14), its provenance five.
#[cfg(feature = "new-maps")]
const MAP_FIELDS: usize = 14;

/// An operation's id as Automerge's API names it (the actor's index in
/// the document is only a hint, looked up when it does not match).
#[cfg(feature = "new-maps")]
fn exid((counter, actor): &(u64, ActorId)) -> ObjId {
    ObjId::Id(*counter, actor.clone(), usize::MAX)
}

/// An entry's id where an operation writes (`Place`), copied for every
/// operation: shared on the server, where a `String` cost an allocation
/// and a free per operation of a catch-up; a `String` in the web app,
/// which checks an edit or two at a time (`Rc` costs it about 250 B brotli).
#[cfg(feature = "new-maps")]
type EntryName = Rc<str>;
#[cfg(not(feature = "new-maps"))]
type EntryName = String;

/// Where an object sits.
#[derive(Clone, Debug)]
enum Place {
    Root,
    Collection { name: Collection, obj: Option<ObjId> },
    Demographics,
    Entry { collection: Collection, id: EntryName, obj: Option<ObjId> },
    Provenance { collection: Collection, id: EntryName, new: bool },
}

/// Values written to one existing entry by these changes.
#[derive(Default)]
struct Update {
    /// The status before, and whether a write changes it.
    status_changed: bool,
    /// Fields written besides the status.
    fields: HashSet<String>,
    /// An appointment's status went from requested to offered or booked
    /// by the clinic: the one change that may write its `start`.
    sets_time: bool,
}

struct Checker<'a> {
    base: &'a Automerge,
    kind: &'a DocKind,
    who: &'a Principal,
    me: String,
    /// Objects made by these changes, by their op id.
    made: HashMap<(u64, ActorId), Place>,
    /// Objects of `base` already resolved.
    existing: HashMap<(u64, ActorId), Place>,
    /// The object the last operation wrote into, and where it sits: a
    /// change writes an object's keys one after another, and finding it
    /// in `made` or `existing` hashed its id (an actor id, with SipHash)
    /// for every operation, a good part of checking a catch-up. Forgotten
    /// when that id is made (`make`), the one way its place can change.
    /// Server only (`new-maps`): the web app checks an edit or two at a
    /// time, and its bundle is at its budget.
    #[cfg(feature = "new-maps")]
    last: Option<((u64, ActorId), Place)>,
    updates: HashMap<(Collection, String), Update>,
    plan: Plan,
}

pub(super) fn check(
    base: &Automerge,
    changes: &[Change],
    kind: &DocKind,
    who: &Principal,
) -> Result<Plan, Denial> {
    let changes: Vec<&Change> =
        changes.iter().filter(|c| base.get_change_by_hash(&c.hash()).is_none()).collect();
    if changes.is_empty() {
        return Ok(Plan::default());
    }
    // Someone with no write right to this kind of document at all is
    // refused before any operation is looked at.
    if let Some(rule) = no_write_right(kind, who) {
        return deny(rule, &[]);
    }
    let mut checker = Checker {
        base,
        kind,
        who,
        me: who.user.to_string(),
        made: HashMap::new(),
        existing: HashMap::new(),
        #[cfg(feature = "new-maps")]
        last: None,
        updates: HashMap::new(),
        plan: Plan::default(),
    };
    // The largest operation id of each change of the batch.
    let mut max_ops: HashMap<ChangeHash, u64> = HashMap::new();
    // The same, by actor and sequence number, and each actor's last change
    // in `base` (read once, if needed).
    #[cfg(feature = "peer-changes")]
    let by_seq: HashMap<(&ActorId, u64), u64> =
        changes.iter().map(|c| ((c.actor_id(), c.seq()), c.max_op())).collect();
    #[cfg(feature = "peer-changes")]
    let mut last_in_base = None;
    let tasks_actor = kind.tasks_actor();
    for change in &changes {
        numbered_after_its_dependencies(base, change, &max_ops)?;
        #[cfg(feature = "peer-changes")]
        numbered_after_its_previous_change(base, change, &by_seq, &mut last_in_base)?;
        max_ops.insert(change.hash(), change.max_op());
        // The one change that adds the `tasks` collection to a thread made
        // before it existed: the same bytes on every device, so it is
        // recognised whole, and its actor is nobody's.
        // Anything else under its actor is refused: it would take the
        // sequence number the real one needs.
        if *change.actor_id() == tasks_actor {
            if kind.tasks_change().is_none_or(|c| c.hash() != change.hash()) {
                return deny(Rule::Schema, &[]);
            }
            // It writes only into the root and the collection it makes.
            let made = (u64::from(change.start_op()), tasks_actor.clone());
            checker.make(made, Place::Collection { name: Collection::Tasks, obj: None });
            continue;
        }
        checker.change(change)?;
    }
    #[cfg(feature = "new-maps")]
    checker.plan.new_maps.close();
    checker.finish()
}

/// A change numbers its operations after every operation it depends on
/// (Automerge starts a change past the largest id its document holds).
/// Automerge 0.12 applies one numbered lower, but the document that makes
/// no longer loads ("max_op is lower than start_op", "mismatching heads"):
/// a new device could not open the record, nor the server after a restart
/// or a compaction. Dependencies in neither `base` nor the batch leave the
/// change waiting in Automerge's queue, unapplied.
fn numbered_after_its_dependencies(
    base: &Automerge,
    change: &Change,
    batch: &HashMap<ChangeHash, u64>,
) -> Result<(), Denial> {
    let seen = change
        .deps()
        .iter()
        .filter_map(|dep| {
            batch
                .get(dep)
                .copied()
                .or_else(|| base.get_change_meta_by_hash(dep).map(|meta| meta.max_op))
        })
        .max()
        .unwrap_or(0);
    if u64::from(change.start_op()) <= seen {
        return deny(Rule::Schema, &[]);
    }
    Ok(())
}

/// A device numbers each change's operations after those of its previous
/// change (the same actor, the sequence number before), which is in the
/// batch or the document: a change skipping a sequence number, or made
/// beside its own previous change and numbered like it, would give two
/// operations one id. Automerge 0.12 applies it; nobody could then tell
/// which operation an id names, and devices would not agree on the record.
#[cfg(feature = "peer-changes")]
fn numbered_after_its_previous_change(
    base: &Automerge,
    change: &Change,
    batch: &HashMap<(&ActorId, u64), u64>,
    last_in_base: &mut Option<HashMap<ActorId, (u64, u64)>>,
) -> Result<(), Denial> {
    let seq = change.seq();
    // Sequence numbers start at 1: a change numbered 0 follows nothing.
    let Some(before) = seq.checked_sub(1) else {
        return deny(Rule::Schema, &[]);
    };
    if before == 0 {
        // A first change where the actor has one already is Automerge's to
        // refuse (a duplicate sequence number).
        return Ok(());
    }
    let previous = batch.get(&(change.actor_id(), before)).copied().or_else(|| {
        let last = last_in_base.get_or_insert_with(|| last_changes(base));
        last.get(change.actor_id()).filter(|(s, _)| *s == before).map(|(_, max_op)| *max_op)
    });
    match previous {
        Some(max_op) if u64::from(change.start_op()) > max_op => Ok(()),
        _ => deny(Rule::Schema, &[]),
    }
}

/// Each actor's last change in `doc`: its sequence number and largest
/// operation id.
#[cfg(feature = "peer-changes")]
fn last_changes(doc: &Automerge) -> HashMap<ActorId, (u64, u64)> {
    let mut last: HashMap<ActorId, (u64, u64)> = HashMap::new();
    for meta in doc.get_changes_meta(&[]) {
        let kept = last.entry(meta.actor.into_owned()).or_default();
        if meta.seq > kept.0 {
            *kept = (meta.seq, meta.max_op);
        }
    }
    last
}

/// The rule broken by writing to this kind of document at all, if any.
fn no_write_right(kind: &DocKind, who: &Principal) -> Option<Rule> {
    let may = match kind {
        // The patient side asks for appointments there (`may_not_create`).
        DocKind::ClinicalRecord { patient, clinic } => {
            who.is_provider_of(*clinic) || who.is_admin_of(*clinic) || who.speaks_for(*patient)
        }
        // The patient side writes requests; a request's clinic answers it.
        DocKind::PatientRecord { patient } => {
            who.speaks_for(*patient) || matches!(who.role, Role::Provider { .. })
        }
        DocKind::MessageThread { patient, clinic } => {
            who.speaks_for(*patient) || who.is_provider_of(*clinic)
        }
    };
    if may {
        None
    } else {
        Some(kind.clinic().map_or(Rule::NotPermitted, |clinic| outsider(who, clinic)))
    }
}

impl Checker<'_> {
    fn change(&mut self, change: &Change) -> Result<(), Denial> {
        // The portal never writes commit messages or extra bytes: they would
        // be data no rule looks at.
        if change.message().is_some_and(|m| !m.is_empty()) || !change.extra_bytes().is_empty() {
            return deny(Rule::Schema, &[]);
        }
        if change.is_empty() {
            return deny(Rule::Schema, &[]);
        }
        self.plan.actors.insert(change.actor_id().clone());
        let actor = change.actor_id();
        let start = u64::from(change.start_op());
        #[cfg(feature = "new-maps")]
        {
            let last = (change.max_op(), actor.clone());
            self.plan.new_maps.last_ops.push((exid(&last), change.hash()));
        }
        let created_before = self.plan.created.len();
        // Read from the change's columns one at a time (`legacy_ops`, in
        // the vendored Automerge): decoding the change whole first copied
        // every operation and its actors' table, for nothing kept.
        for (i, op) in change.legacy_ops().enumerate() {
            let id = (start + i as u64, actor.clone());
            let place = self.place(&op.obj)?;
            let Key::Map(key) = &op.key else {
                return deny(Rule::Schema, &path(&place, None));
            };
            if op.insert {
                return deny(Rule::Schema, &path(&place, Some(key)));
            }
            #[cfg(feature = "new-maps")]
            let into_new = matches!(
                place,
                Place::Entry { obj: None, .. } | Place::Provenance { new: true, .. }
            );
            self.op(id.clone(), place, key, &op.action, op.pred.len())?;
            #[cfg(feature = "new-maps")]
            if into_new {
                self.plan.new_maps.write(&op.obj, String::from(key.as_str()), op.action, &id);
            }
        }
        self.plan.largest_change =
            self.plan.largest_change.max(self.plan.created.len() - created_before);
        Ok(())
    }

    /// Where the object an operation writes into sits.
    fn place(&mut self, obj: &ObjectId) -> Result<Place, Denial> {
        let OpId(counter, actor) = match obj {
            ObjectId::Root => return Ok(Place::Root),
            ObjectId::Id(id) => id,
        };
        #[cfg(feature = "new-maps")]
        if let Some(((c, a), place)) = &self.last
            && c == counter
            && a == actor
        {
            return Ok(place.clone());
        }
        let key = (*counter, actor.clone());
        if let Some(place) = self.made.get(&key).or_else(|| self.existing.get(&key)) {
            let place = place.clone();
            // (One just resolved is kept from its next operation on.)
            #[cfg(feature = "new-maps")]
            {
                self.last = Some((key, place.clone()));
            }
            return Ok(place);
        }
        let place = self.existing_place(*counter, actor)?;
        self.existing.insert(key, place.clone());
        Ok(place)
    }

    /// Object `id` is made by these changes, sitting at `place`.
    #[inline]
    fn make(&mut self, id: (u64, ActorId), place: Place) {
        #[cfg(feature = "new-maps")]
        if self.last.as_ref().is_some_and(|(last, _)| *last == id) {
            self.last = None;
        }
        self.made.insert(id, place);
    }

    /// An object of the document as it is, by its visible path from the root.
    fn existing_place(&self, counter: u64, actor: &ActorId) -> Result<Place, Denial> {
        let unknown = || Denial { rule: Rule::Schema, path: String::new() };
        let obj = self.base.import_obj(&format!("{counter}@{actor}")).map_err(|_| unknown())?;
        // Hidden objects (deleted, or losing a conflict) take no writes.
        let path =
            self.base.parents(&obj).map_err(|_| unknown())?.visible_path().ok_or_else(unknown)?;
        let keys: Vec<&str> = path
            .iter()
            .map(|(_, prop)| match prop {
                Prop::Map(key) => Ok(key.as_str()),
                Prop::Seq(_) => Err(unknown()),
            })
            .collect::<Result<_, _>>()?;
        let collection =
            |name: &str| Collection::parse(name).filter(|c| self.kind.collections().contains(c));
        Ok(match keys.as_slice() {
            [DEMOGRAPHICS] if self.kind.has_demographics() => Place::Demographics,
            [name] => match collection(name) {
                Some(name) => Place::Collection { name, obj: Some(obj) },
                None => return Err(unknown()),
            },
            [name, id] => match collection(name) {
                Some(collection) => {
                    Place::Entry { collection, id: EntryName::from(*id), obj: Some(obj) }
                }
                None => return Err(unknown()),
            },
            [name, id, "provenance"] => match collection(name) {
                Some(collection) => {
                    Place::Provenance { collection, id: EntryName::from(*id), new: false }
                }
                None => return Err(unknown()),
            },
            _ => return Err(unknown()),
        })
    }

    fn op(
        &mut self,
        id: (u64, ActorId),
        place: Place,
        key: &str,
        action: &OpType,
        preds: usize,
    ) -> Result<(), Denial> {
        let at = At { place: &place, key };
        if matches!(action, OpType::Delete) {
            return at.deny(Rule::AppendOnly);
        }
        match &place {
            Place::Root => at.deny(Rule::Schema),
            Place::Collection { name, obj } => {
                self.new_entry(id, *name, obj.clone(), key, action, preds, &at)
            }
            Place::Demographics => self.demographics(key, action, &at),
            Place::Entry { collection, id: entry, obj: None } => {
                self.new_field(fields::entry_fields(*collection), key, action, &at)?;
                if matches!(action, OpType::Make(_)) {
                    let provenance =
                        Place::Provenance { collection: *collection, id: entry.clone(), new: true };
                    #[cfg(feature = "new-maps")]
                    self.plan.new_maps.start(self.base, &id);
                    self.make(id, provenance);
                }
                Ok(())
            }
            Place::Entry { collection, id: entry, obj: Some(obj) } => {
                self.update(*collection, String::from(&**entry), obj, key, action, &at)
            }
            Place::Provenance { new: true, .. } => {
                self.new_field(fields::PROVENANCE, key, action, &at)
            }
            Place::Provenance { new: false, .. } => at.deny(Rule::ImmutableField),
        }
    }

    /// A map made at `key` in a collection: a new entry.
    #[allow(clippy::too_many_arguments)]
    fn new_entry(
        &mut self,
        id: (u64, ActorId),
        collection: Collection,
        obj: Option<ObjId>,
        key: &str,
        action: &OpType,
        preds: usize,
        at: &At<'_>,
    ) -> Result<(), Denial> {
        let exists = obj
            .as_ref()
            .is_some_and(|obj| !self.base.get_all(obj, key).unwrap_or_default().is_empty())
            || self.plan.created.contains(&(collection, key.to_owned()));
        if exists || preds > 0 {
            // Replacing an entry, even one only this batch made.
            return at.deny(Rule::AppendOnly);
        }
        if !matches!(action, OpType::Make(ObjType::Map)) || key.parse::<EntryId>().is_err() {
            return at.deny(Rule::Schema);
        }
        if let Some(rule) = self.may_not_create(collection) {
            return at.deny(rule);
        }
        #[cfg(feature = "new-maps")]
        self.plan.new_maps.start(self.base, &id);
        self.make(id, Place::Entry { collection, id: EntryName::from(key), obj: None });
        self.plan.created.insert((collection, key.to_owned()));
        Ok(())
    }

    /// The rule broken by making an entry in `collection`, if any.
    fn may_not_create(&self, collection: Collection) -> Option<Rule> {
        let who = self.who;
        let may = match self.kind {
            // Appointments also by the clinic's admins, and requested by
            // the patient side of a clinic the patient consents to (whose
            // name the principal carries).
            DocKind::ClinicalRecord { patient, clinic } => {
                who.is_provider_of(*clinic)
                    || (collection == Collection::Appointments
                        && (who.is_admin_of(*clinic)
                            || (who.speaks_for(*patient) && who.clinic_name(*clinic).is_some())))
            }
            DocKind::PatientRecord { patient } => who.speaks_for(*patient),
            DocKind::MessageThread { clinic, .. } if collection == Collection::Tasks => {
                who.is_provider_of(*clinic)
            }
            DocKind::MessageThread { patient, clinic } => {
                who.speaks_for(*patient) || who.is_provider_of(*clinic)
            }
        };
        (!may)
            .then(|| self.kind.clinic().map_or(Rule::NotPermitted, |clinic| outsider(who, clinic)))
    }

    /// A field of an entry (or provenance) these changes made: listed and typed.
    fn new_field(
        &self,
        fields: &'static [Field],
        key: &str,
        action: &OpType,
        at: &At<'_>,
    ) -> Result<(), Denial> {
        let Some(field) = fields::find(fields, key) else {
            return at.deny(Rule::Schema);
        };
        // A field may be written again within the same batch (an entry
        // recorded and stopped at once); every value is checked, also the
        // ones the last write hides.
        match (action, field.kind) {
            (OpType::Make(ObjType::Map), Kind::Map(_)) => Ok(()),
            (OpType::Put(value), _) => admit(field, value, at),
            _ => at.deny(Rule::Schema),
        }
    }

    fn demographics(&self, key: &str, action: &OpType, at: &At<'_>) -> Result<(), Denial> {
        if !matches!(self.who.role, Role::Patient { patient } if patient == self.kind.patient()) {
            return at.deny(Rule::NotPermitted);
        }
        let Some(field) = fields::find(fields::DEMOGRAPHICS, key) else {
            return at.deny(Rule::Schema);
        };
        match action {
            OpType::Put(value) => admit(field, value, at),
            _ => at.deny(Rule::Schema),
        }
    }

    /// A write to a field of an entry that already exists.
    fn update(
        &mut self,
        collection: Collection,
        entry: String,
        obj: &ObjId,
        key: &str,
        action: &OpType,
        at: &At<'_>,
    ) -> Result<(), Denial> {
        let who = self.who;
        let before = |field: &str| scalar(self.base, obj, field);
        let field = fields::find(fields::entry_fields(collection), key);
        let OpType::Put(value) = action else {
            return at.deny(if field.is_some() { Rule::ImmutableField } else { Rule::Schema });
        };
        let Some(field) = field else { return at.deny(Rule::Schema) };
        let text = value.as_str();
        let by_me = text == Some(self.me.as_str());
        let mut status_change = false;
        let mut sets_time = false;
        match self.kind {
            DocKind::ClinicalRecord { patient, clinic } => {
                let appointment = collection == Collection::Appointments;
                let side =
                    if who.is_provider_of(*clinic) || (appointment && who.is_admin_of(*clinic)) {
                        Side::Clinic
                    } else if appointment && who.speaks_for(*patient) {
                        // Their appointments: cancel, take or turn down a time.
                        Side::Patient
                    } else {
                        return at.deny(outsider(who, *clinic));
                    };
                match key {
                    "status" => {
                        let from = before("status").unwrap_or_default();
                        if !text.is_some_and(|to| collection.status_may_change(&from, to, side)) {
                            return at.deny(Rule::StatusTransition);
                        }
                        status_change = text != Some(from.as_str());
                        let parse = AppointmentStatus::parse;
                        sets_time = appointment
                            && parse(&from)
                                .zip(text.and_then(parse))
                                .is_some_and(|(f, t)| f.sets_time(t));
                    }
                    // Only with the change that gives it (`finish`).
                    "start" if appointment && side == Side::Clinic => {}
                    "status_by" if !by_me => return at.deny(Rule::ImpersonatedAuthor),
                    "status_by" | "status_reason" | "status_at" => {}
                    _ => return at.deny(Rule::ImmutableField),
                }
            }
            DocKind::PatientRecord { patient } => {
                // Only refill requests can be updated: answered by their
                // clinic, or withdrawn by the patient side.
                let clinic = before("clinic").and_then(|c| c.parse::<ClinicId>().ok());
                let from = before("status").as_deref().and_then(RefillStatus::parse);
                let may_become = |to: Option<&str>, side| {
                    from.zip(to.and_then(RefillStatus::parse))
                        .is_some_and(|(from, to)| from.may_become(to, side))
                };
                if clinic.is_some_and(|c| who.is_provider_of(c)) {
                    match key {
                        "status" => {
                            if !may_become(text, Side::Clinic) {
                                return at.deny(Rule::StatusTransition);
                            }
                            status_change = true;
                        }
                        "decided_by" if !by_me => return at.deny(Rule::ImpersonatedAuthor),
                        "decided_by" | "decided_at" | "decision_note" => {}
                        _ => return at.deny(Rule::ImmutableField),
                    }
                } else if who.speaks_for(*patient) {
                    if key != "status" {
                        return at.deny(Rule::ImmutableField);
                    }
                    if !may_become(text, Side::Patient) {
                        return at.deny(Rule::StatusTransition);
                    }
                    status_change = true;
                } else {
                    return at.deny(clinic.map_or(Rule::NotPermitted, |c| outsider(who, c)));
                }
            }
            DocKind::MessageThread { clinic, .. } if collection == Collection::Tasks => {
                // Work items: moved on or assigned by the clinic's providers.
                if !who.is_provider_of(*clinic) {
                    return at.deny(outsider(who, *clinic));
                }
                match key {
                    "status" => {
                        let from = before("status").unwrap_or_default();
                        if !text
                            .is_some_and(|to| collection.status_may_change(&from, to, Side::Clinic))
                        {
                            return at.deny(Rule::StatusTransition);
                        }
                        status_change = text != Some(from.as_str());
                    }
                    "status_by" if !by_me => return at.deny(Rule::ImpersonatedAuthor),
                    "status_by" | "status_at" => {}
                    "owner" | "owner_name" => {
                        self.plan.assigned.insert(entry.clone());
                    }
                    _ => return at.deny(Rule::ImmutableField),
                }
            }
            DocKind::MessageThread { patient, clinic } => {
                if !(who.speaks_for(*patient) || who.is_provider_of(*clinic)) {
                    return at.deny(outsider(who, *clinic));
                }
                if key != "read_at" && key != "read_by" {
                    return at.deny(Rule::ImmutableField);
                }
                // Only the other side marks a message read, and only once.
                if before("side").as_deref() == Some(who.side().code()) {
                    return at.deny(Rule::NotPermitted);
                }
                if before("read_at").is_some() {
                    return at.deny(Rule::ImmutableField);
                }
                if key == "read_by" && !by_me {
                    return at.deny(Rule::ImpersonatedAuthor);
                }
            }
        }
        admit(field, value, at)?;
        let update = self.updates.entry((collection, entry.clone())).or_default();
        update.status_changed |= status_change;
        update.sets_time |= sets_time;
        if key != "status" {
            update.fields.insert(key.to_owned());
        }
        self.plan.updated.insert((collection, entry));
        Ok(())
    }

    /// Fields that explain a status change (who, when, why) may be written
    /// only with the change they explain; a message is marked read with
    /// both who and when.
    fn finish(self) -> Result<Plan, Denial> {
        for ((collection, id), update) in &self.updates {
            let path =
                |field: &str| vec![collection.code().to_owned(), id.clone(), field.to_owned()];
            if *collection == Collection::Messages {
                if update.fields.len() != 2 {
                    return deny(Rule::Schema, &path("read_at"));
                }
            } else if *collection == Collection::Tasks {
                // Who and when come with a new status or a new owner.
                let moved = update.status_changed || update.fields.contains("owner");
                let stamped =
                    update.fields.contains("status_by") && update.fields.contains("status_at");
                if !(moved && stamped) {
                    return deny(Rule::Schema, &path("status_by"));
                }
            } else if let Some(field) = update.fields.iter().find(|_| !update.status_changed) {
                return deny(Rule::ImmutableField, &path(field));
            } else if update.fields.contains("start") && !update.sets_time {
                // An appointment's time is given once, with its confirmation
                // or offer; after that a new time is a new appointment.
                return deny(Rule::ImmutableField, &path("start"));
            }
        }
        Ok(self.plan)
    }
}

/// The visible string at `field` of `obj`.
fn scalar(doc: &Automerge, obj: &ObjId, field: &str) -> Option<String> {
    match doc.get(obj, field).ok()?? {
        (Value::Scalar(s), _) => s.as_str().map(str::to_owned),
        _ => None,
    }
}

fn admit(field: &Field, value: &ScalarValue, at: &At<'_>) -> Result<(), Denial> {
    match field.admits(value) {
        Ok(()) => Ok(()),
        Err(Misfit::TooLong(_)) => at.deny(Rule::Limit),
        Err(Misfit::WrongType) => at.deny(Rule::Schema),
    }
}

/// Where an operation writes, spelled out only when it is refused: each
/// operation of a batch used to build its path (a few strings) whether or
/// not it was refused, a good part of checking thousands of them.
struct At<'a> {
    place: &'a Place,
    key: &'a str,
}

impl At<'_> {
    fn deny<T>(&self, rule: Rule) -> Result<T, Denial> {
        deny(rule, &path(self.place, Some(self.key)))
    }
}

fn path(place: &Place, key: Option<&str>) -> Vec<String> {
    let mut path: Vec<String> = match place {
        Place::Root => vec![],
        Place::Collection { name, .. } => vec![name.code().to_owned()],
        Place::Demographics => vec![DEMOGRAPHICS.to_owned()],
        Place::Entry { collection, id, .. } => vec![collection.code().to_owned(), id.to_string()],
        Place::Provenance { collection, id, .. } => {
            vec![collection.code().to_owned(), id.to_string(), "provenance".to_owned()]
        }
    };
    path.extend(key.map(str::to_owned));
    path
}

#[cfg(all(test, feature = "new-maps"))]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{ActorId, AutoCommit, ROOT, ReadDoc};
    use proptest::prelude::*;

    use super::{NewMaps, Plan};
    use crate::ids::{ClinicId, EntryId, PatientId, UserId};
    use crate::policy::{Principal, Role, check_entries, check_ops};
    use crate::read::Maps;
    use crate::schema::{DocKind, Observation, Provenance};
    use crate::status::ResultStatus;

    fn potassium(clinic: ClinicId, who: &Principal, value: f64) -> Observation {
        Observation {
            report: None,
            loinc: "2823-3".into(),
            display: "Potassium".into(),
            value_quantity: Some(value),
            value_string: None,
            unit: Some("mmol/L".into()),
            reference_low: Some(3.5),
            reference_high: Some(5.1),
            effective: "2026-12-01T08:00:00Z".into(),
            status: ResultStatus::Final,
            replaces: None,
            provenance: Provenance {
                clinic,
                clinic_name: "Clinic".into(),
                recorder: who.user,
                recorder_name: who.name.clone(),
                recorded: "2026-12-01T09:00:00Z".into(),
            },
            status_reason: None,
            status_by: None,
            status_at: None,
            interpretation: None,
        }
    }

    /// Three devices of one clinic, offline; each step one device adds a
    /// result or writes a field of one it has (a value or a critical mark),
    /// commits or writes on in the same change, and perhaps syncs with
    /// the next device. So the batch holds keys written twice in one
    /// change, in later changes and by devices at once.
    type Step = (usize, usize, u8, bool, bool);

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn new_maps_are_what_the_document_shows(
            steps in proptest::collection::vec((0..3usize, 0..5usize, 0..6u8, any::<bool>(), any::<bool>()), 1..16)
        ) {
            let clinic = ClinicId::mint();
            let kind = DocKind::ClinicalRecord { patient: PatientId::mint(), clinic };
            let who = Principal {
                user: UserId::mint(),
                role: Role::Provider { clinics: vec![clinic] },
                name: "Dr Example".into(),
                clinic_names: vec![(clinic, "Clinic".into())],
                colleagues: vec![],
            };
            let base = kind.genesis();
            let mut genesis = AutoCommit::load(&base.save()).unwrap();
            let mut devices: Vec<AutoCommit> = (1..=3u8)
                .map(|n| genesis.fork().with_actor(ActorId::from(vec![n; 16])))
                .collect();
            let mut made: Vec<EntryId> = Vec::new();
            for (step, (device, entry, write, commit, sync)) in (steps as Vec<Step>).into_iter().enumerate() {
                // Critical, impossible or normal, and never the same twice.
                let value = [4.0, 58.0, 6.8][usize::from(write % 3)] + step as f64 / 1000.0;
                let doc = &mut devices[device];
                let (_, coll) = doc.get(ROOT, "observations").unwrap().unwrap();
                let known = made.get(entry).and_then(|id| doc.get(&coll, id.to_string()).unwrap());
                match known {
                    Some((_, obj)) => {
                        if write < 3 {
                            doc.put(&obj, "value_quantity", value).unwrap();
                        } else {
                            doc.put(&obj, "interpretation", ["HH", "LL", "HH"][usize::from(write % 3)]).unwrap();
                        }
                    }
                    None => {
                        let id = EntryId::mint();
                        crate::record::add(doc, id, &potassium(clinic, &who, value)).unwrap();
                        made.push(id);
                    }
                }
                if commit {
                    doc.commit();
                }
                if sync {
                    let mut from = devices[device].fork();
                    devices[(device + 1) % 3].merge(&mut from).unwrap();
                }
            }
            let mut after = base.clone();
            for device in &mut devices {
                after.apply_changes(device.document().get_changes(&base.get_heads())).unwrap();
            }
            let changes = after.get_changes(&base.get_heads());
            // Automerge writes a value equal to one of a conflict's as a
            // deletion, which is refused; the values differ (`step`), but
            // a refused batch checks nothing here either way.
            let Ok(plan) = check_ops(&base, &changes, &kind, &who) else { return Ok(()) };
            let known: &Maps = plan.new_maps.in_doc(&after).unwrap();
            for (obj, map) in known {
                let shown: Maps = std::iter::once((
                    obj.clone(),
                    after.map_range(obj, ..).map(|item| {
                        let id = item.id();
                        (item.key.into_owned(), (automerge::Value::from(item.value), id))
                    }).collect(),
                )).collect();
                prop_assert_eq!(Some(map), shown.get(obj));
            }
            let exact = Plan { new_maps: NewMaps::default(), ..plan.clone() };
            prop_assert_eq!(
                check_entries(&after, &plan, &kind, &who),
                check_entries(&after, &exact, &kind, &who)
            );
        }
    }

    #[test]
    fn a_map_whose_id_was_made_before_is_read_from_the_document() {
        let actor = ActorId::from(vec![7; 16]);
        let mut doc = AutoCommit::new().with_actor(actor.clone());
        let obj = doc.put_object(ROOT, "m", automerge::ObjType::Map).unwrap();
        let mut maps = NewMaps::default();
        // An id the document already has an object under.
        maps.start(doc.document(), &(1, actor.clone()));
        assert!(maps.maps.is_empty() && maps.unread.contains(&obj));
        // A fresh id, made twice in one batch.
        maps.start(doc.document(), &(5, actor.clone()));
        assert_eq!(maps.maps.len(), 1);
        maps.start(doc.document(), &(5, actor));
        assert!(maps.maps.is_empty() && maps.unread.len() == 2);
    }
}
