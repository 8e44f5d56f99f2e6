//! A provider's work queue, "To do" (issue 14): messages from patients the
//! clinic has not answered, refill and appointment requests waiting for the
//! clinic (an appointment request is answered right here), and
//! results recorded in the last `RESULT_DAYS` days by someone else (a
//! colleague or another clinic), oldest first; derived from the replicas on
//! this device, so it works offline and follows every change synced in.
//!
//! Marking an item handled or assigning it writes a work item (`Task`) into
//! the clinic's thread with the patient; an item is handled once a
//! completed task for it exists (`MessageThread::handled`). An answered
//! refill request or an answered message leaves the queue by itself.

use crate::i18n::{Tr, t, tf, ts};
use std::cell::RefCell;
use std::rc::Rc;

use automerge::ChangeHash;
use leptos::prelude::*;
use shared::record;
use shared::schema::{Collection, MessageThread, Provenance, Task};
use shared::status::{AppointmentStatus, RefillStatus, ResultStatus, TaskStatus};
use shared::{ClinicId, DocId, DocKind, EntryId, PatientId, UserId};

use crate::reads::{self, PatientData};

use crate::replicas::{self, with_core};
use crate::state::Ui;
use crate::{Page, logic, staff};

/// How long a result recorded by someone else stays new.
const RESULT_DAYS: i64 = 14;

/// One piece of work.
#[derive(Clone)]
pub struct Item {
    pub patient: PatientId,
    pub name: String,
    pub clinic: ClinicId,
    /// When it arrived (RFC 3339).
    pub since: String,
    pub kind: Collection,
    pub focus: EntryId,
    pub what: String,
    /// Who read a message, and when.
    pub state: String,
    pub owner: Option<(UserId, String)>,
    /// The open task on it, if any.
    pub task: Option<EntryId>,
}

/// A patient's items, with the heads of their documents they were read at.
type Heads = Vec<(DocId, Vec<ChangeHash>)>;
type PatientItems = (PatientId, Heads, Rc<Vec<Item>>);
type Queue = (u64, UserId, Rc<Vec<Item>>);

thread_local! {
    /// Per patient: a change re-reads only the patient it touched. Only
    /// the items are kept, not the records they were read from.
    static BY_PATIENT: RefCell<Vec<PatientItems>> = const { RefCell::new(Vec::new()) };
    /// The last queue, by the replicas' version and who asked: the
    /// navigation, the patient list and the page all read it.
    static LAST: RefCell<Option<Queue>> = const { RefCell::new(None) };
}

/// The queue of the signed-in provider's clinics, oldest first (tracked).
pub fn items(ui: Ui) -> Rc<Vec<Item>> {
    let version = ui.version.get();
    let Some(me) = ui.me.get() else { return Rc::default() };
    if me.role != shared::api::UserRole::Provider {
        return Rc::default();
    }
    let last = LAST.with_borrow(|l| {
        l.as_ref().filter(|(v, u, _)| *v == version && *u == me.user_id).map(|l| l.2.clone())
    });
    if let Some(items) = last {
        return items;
    }
    // The heads of each patient's documents on the device.
    let mut keys: Vec<(PatientId, Heads)> = Vec::new();
    with_core(|core| {
        for (id, kind) in &core.kinds {
            let Some(doc) = core.client.doc(*id) else { continue };
            let (p, entry) = (kind.patient(), (*id, doc.get_heads()));
            match keys.iter_mut().find(|(q, _)| *q == p) {
                Some((_, v)) => v.push(entry),
                None => keys.push((p, vec![entry])),
            }
        }
    });
    let mut cache = BY_PATIENT.take();
    let mut fresh = Vec::new();
    let mut all = Vec::new();
    for (patient, heads) in keys {
        let kept = cache.iter().position(|(p, h, _)| *p == patient && *h == heads);
        let items = match kept {
            Some(i) => cache.swap_remove(i).2,
            None => Rc::new(patient_items(&me, patient, &reads::read_patient_data(patient))),
        };
        all.extend(items.iter().cloned());
        fresh.push((patient, heads, items));
    }
    BY_PATIENT.set(fresh);
    logic::sort_by_key(&mut all, logic::Order::Ascending, |i| i.since.clone());
    let all = Rc::new(all);
    LAST.set(Some((version, me.user_id, all.clone())));
    all
}

/// One patient's items for each of the provider's clinics.
fn patient_items(me: &shared::api::Me, patient: PatientId, data: &PatientData) -> Vec<Item> {
    let mut out = Vec::new();
    let record = data.record.as_ref().map(|r| &r.1);
    let name = record.map_or(String::new(), |r| {
        let d = &r.demographics;
        let name = format!(
            "{} {}",
            d.given.as_deref().unwrap_or_default(),
            d.family.as_deref().unwrap_or_default()
        );
        name.trim().to_owned()
    });
    let cutoff = logic::minutes(&replicas::now()).unwrap_or(0) - RESULT_DAYS * 1440;
    let recent = |p: &Provenance| {
        p.recorder != me.user_id && logic::minutes(&p.recorded).is_some_and(|m| m >= cutoff)
    };
    let empty = MessageThread::default();
    for clinic in me.clinics.iter().map(|c| c.id) {
        let thread = data.threads.iter().find(|t| t.1 == clinic).map_or(&empty, |t| &t.2);
        let mut push = |kind, id: &str, since: &str, what: String, state: String| {
            let Ok(focus) = id.parse() else { return };
            if thread.handled(focus) {
                return;
            }
            let task = thread.open_task(focus);
            out.push(Item {
                patient,
                name: name.clone(),
                clinic,
                since: since.to_owned(),
                kind,
                focus,
                what,
                state,
                owner: task.and_then(|(_, t)| Some((t.owner?, t.owner_name.clone()?))),
                task: task.and_then(|(id, _)| id.parse().ok()),
            });
        };
        for (id, m) in thread.unanswered() {
            let state = match (&m.read_at, m.read_by) {
                (Some(at), Some(by)) => {
                    tf("Read by {0}, {1}", &[&colleague(me, by), &crate::when::moment(at)])
                }
                _ => ts("Unread"),
            };
            push(Collection::Messages, id, &m.sent_at, m.body.chars().take(80).collect(), state);
        }
        for (id, q) in record.iter().flat_map(|r| &r.refill_requests) {
            if q.clinic != clinic || q.status != RefillStatus::Requested {
                continue;
            }
            let drug = data
                .clinical
                .iter()
                .find_map(|c| c.2.prescriptions.get(&q.prescription.to_string()))
                .map_or(t("a prescription"), |rx| rx.display.as_str());
            let note =
                if q.note.is_empty() { String::new() } else { format!(": “{}”", q.note) };
            push(
                Collection::RefillRequests,
                id,
                &q.requested_at,
                format!("{drug}{note}"),
                String::new(),
            );
        }
        // Appointment requests to the clinic, since asked (again).
        for (id, a) in data.clinic_record(clinic).iter().flat_map(|r| &r.appointments) {
            if a.status == AppointmentStatus::Proposed {
                let since = a.status_at.as_deref().unwrap_or(&a.provenance.recorded);
                let what = match &a.preferred {
                    Some(p) => tf("{0} (preferred: {1})", &[&a.reason, &p]),
                    None => a.reason.clone(),
                };
                push(Collection::Appointments, id, since, what, String::new());
            }
        }
        // A report is one item; a result outside a report another.
        for (_, _, c) in &data.clinical {
            for (id, r) in &c.reports {
                if r.status != ResultStatus::EnteredInError && recent(&r.provenance) {
                    let what = format!("{} ({})", r.display, r.provenance.clinic_name);
                    push(Collection::Reports, id, &r.provenance.recorded, what, String::new());
                }
            }
            for (id, o) in &c.observations {
                if o.report.is_none()
                    && o.status != ResultStatus::EnteredInError
                    && recent(&o.provenance)
                {
                    let what = format!("{} ({})", o.display, o.provenance.clinic_name);
                    push(Collection::Observations, id, &o.provenance.recorded, what, String::new());
                }
            }
        }
    }
    out
}

/// A colleague's name from the directory the device keeps, or "a colleague".
fn colleague(me: &shared::api::Me, user: UserId) -> String {
    if user == me.user_id {
        return ts("you");
    }
    me.colleagues
        .iter()
        .find(|c| c.user_id == user)
        .map_or_else(|| ts("a colleague"), |c| c.display_name.clone())
}

/// Messages opens on the conversation of the item's message, not the
/// latest one.
fn open_conversation(ui: Ui, item: &Item) {
    let data = reads::patient_data(item.patient);
    let Some((doc, _, thread)) = data.threads.iter().find(|t| t.1 == item.clinic) else { return };
    let id = item.focus.to_string();
    if let Some(m) = thread.messages.get(&id) {
        crate::messages::open(ui.conversation, *doc, m.conversation(&id).unwrap_or_default());
    }
}

/// Writes the item's task: a new one, or the open one moved on.
fn write(item: &Item, status: TaskStatus, owner: Option<(UserId, String)>) -> Result<(), String> {
    let doc = DocKind::MessageThread { patient: item.patient, clinic: item.clinic }.doc_id();
    let (clinic, focus, kind, task) = (item.clinic, item.focus, item.kind, item.task);
    replicas::edit(doc, |tx, who, at| {
        let owner_ref = owner.as_ref().map(|(u, n)| (*u, n.as_str()));
        if let Some(id) = task {
            return record::update_task(tx, id, status, owner_ref, who.user, at);
        }
        let task = Task {
            focus,
            focus_kind: kind,
            status,
            owner: owner.as_ref().map(|o| o.0),
            owner_name: owner.as_ref().map(|o| o.1.clone()),
            provenance: Provenance {
                clinic,
                clinic_name: who.clinic_name(clinic).unwrap_or_default().to_owned(),
                recorder: who.user,
                recorder_name: who.name.clone(),
                recorded: at.to_owned(),
            },
            status_by: Some(who.user),
            status_at: Some(at.to_owned()),
        };
        record::add(tx, EntryId::mint(), &task)
    })
}

fn label(kind: Collection) -> &'static str {
    match kind {
        Collection::Messages => t("Message"),
        Collection::RefillRequests => t("Refill request"),
        Collection::Appointments => t("Appointment request"),
        _ => t("New result"),
    }
}

/// The "To do" page.
#[component]
pub fn Todo(page: RwSignal<Page>) -> impl IntoView {
    let ui = expect_context::<Ui>();
    let error = RwSignal::new(None::<String>);
    // Online, ask for the offline set again: patients with new work since
    // it was last asked for come onto the device.
    if ui.online_untracked() {
        leptos::task::spawn_local(crate::session::keep(ui));
    }
    let list = move || {
        let items = items(ui);
        let me = ui.me.get()?;
        if items.is_empty() {
            return Some(view! { <p class="muted">{Tr("Nothing waiting.")}</p> }.into_any());
        }
        let now = replicas::now();
        let rows = items
            .iter()
            .map(|item| {
                let item = item.clone();
                let options: Vec<(UserId, String)> = me
                    .colleagues
                    .iter()
                    .filter(|c| c.clinic_id == item.clinic)
                    .map(|c| (c.user_id, c.display_name.clone()))
                    .collect();
                let chosen = RwSignal::new(String::new());
                let owner = item.owner.as_ref().map(|(u, n)| {
                    if *u == me.user_id { ts("Assigned to you") } else { tf("Assigned to {0}", &[&n]) }
                });
                let age = logic::age(&now, &item.since);
                let head = format!("{} · {} · {age}", item.name, label(item.kind));
                let (what, state) = (item.what.clone(), item.state.clone());
                let answer = (item.kind == Collection::Appointments)
                    .then_some((item.patient, item.clinic, item.focus));
                let (a, b, c) = (item.clone(), item.clone(), options.clone());
                let open = move |_| {
                    if a.kind == Collection::Messages {
                        open_conversation(ui, &a);
                    }
                    let target = crate::item_page(ui, a.patient, a.kind);
                    if !staff::open_patient(ui, page, a.patient, target) {
                        error.set(Some(t(staff::NEEDS_NETWORK).into()));
                    }
                };
                let handled = move |_| error.set(write(&b, TaskStatus::Completed, None).err());
                let assign = move |_| {
                    let pick = chosen.get_untracked();
                    match c.iter().find(|(u, _)| u.to_string() == pick) {
                        Some(o) => error.set(write(&item, TaskStatus::Requested, Some(o.clone())).err()),
                        None => error.set(Some(ts("Choose a colleague to assign it to."))),
                    }
                };
                view! {
                    <li class="todo-item">
                        <button type="button" class="link" on:click=open>{head}</button>
                        <p class="body">{what}</p>
                        {(!state.is_empty()).then(|| view! { <p class="meta">{state}</p> })}
                        {owner.map(|o| view! { <p class="meta"><strong>{o}</strong></p> })}
                        {answer.map(|(patient, clinic, id)| view! { <crate::appointments::Answer patient clinic id status=AppointmentStatus::Proposed clinic_side=true/> })}
                        <div class="inline-form">
                            <select aria-label=t("Assign to") on:change=move |ev| chosen.set(event_target_value(&ev))>
                                <option value="">{Tr("Assign to…")}</option>
                                {options.into_iter().map(|(u, n)| view! { <option value=u.to_string()>{n}</option> }).collect_view()}
                            </select>
                            <button type="button" class="secondary" on:click=assign>{Tr("Assign")}</button>
                            <button type="button" on:click=handled>{Tr("Mark handled")}</button>
                        </div>
                    </li>
                }
            })
            .collect_view();
        Some(view! { <ol class="todo">{rows}</ol> }.into_any())
    };
    view! {
        <section class="card" aria-labelledby="todo-h">
            <h2 id="todo-h">{Tr("To do")}</h2>
            <p class="muted">{Tr("Messages waiting for an answer, refill and appointment requests, and new results from others, oldest first.")}</p>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            {list}
        </section>
    }
}
