//! A provider's work queue, "To do" (issue 14): messages from patients the
//! clinic has not answered, refill requests waiting for the clinic, and
//! results recorded in the last `RESULT_DAYS` days by someone else (a
//! colleague or another clinic), oldest first; derived from the replicas on
//! this device, so it works offline and follows every change synced in.
//!
//! Marking an item handled or assigning it writes a work item (`Task`) into
//! the clinic's thread with the patient; an item is handled once a
//! completed task for it exists (`MessageThread::handled`). An answered
//! refill request or an answered message leaves the queue by itself.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use automerge::{Automerge, ChangeHash, ROOT, ReadDoc};
use leptos::prelude::*;
use shared::record;
use shared::schema::{ClinicalRecord, Collection, MessageThread, PatientRecord, Provenance, Task};
use shared::status::{RefillStatus, ResultStatus, TaskStatus};
use shared::{ClinicId, DocId, DocKind, EntryId, PatientId, UserId};

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

/// What one document says for the queue, kept per document by heads so a
/// change re-reads only the document it touched.
enum Facts {
    Patient(String, PatientRecord),
    Thread(MessageThread),
    /// Result groups (focus, its collection, recorded, what, recorder) and
    /// prescriptions (id, name).
    Clinical(Vec<(EntryId, Collection, String, String, UserId)>, Vec<(EntryId, String)>),
}

type Cached = (Vec<ChangeHash>, Rc<Facts>);
type PatientFacts = (PatientId, Vec<(DocKind, Rc<Facts>)>);
type Queue = (u64, UserId, Rc<Vec<Item>>);

thread_local! {
    static FACTS: RefCell<HashMap<DocId, Cached>> = RefCell::default();
    /// The last queue, by the replicas' version and who asked: the
    /// navigation, the patient list and the page all read it.
    static LAST: RefCell<Option<Queue>> = const { RefCell::new(None) };
}

fn facts(id: DocId, kind: DocKind, doc: &Automerge) -> Option<Rc<Facts>> {
    let heads = doc.get_heads();
    if let Some(f) =
        FACTS.with_borrow(|c| c.get(&id).filter(|(h, _)| *h == heads).map(|(_, f)| f.clone()))
    {
        return Some(f);
    }
    doc.get(ROOT, "kind").ok().flatten()?;
    let f = Rc::new(match kind {
        DocKind::PatientRecord { .. } => {
            let data = crate::reads::hydrate_patient_record(doc)?;
            let d = &data.demographics;
            let name = format!(
                "{} {}",
                d.given.as_deref().unwrap_or_default(),
                d.family.as_deref().unwrap_or_default()
            );
            Facts::Patient(name.trim().to_owned(), data)
        }
        DocKind::MessageThread { .. } => Facts::Thread(shared::read::hydrate(doc).ok()?),
        DocKind::ClinicalRecord { .. } => {
            let record: ClinicalRecord = shared::read::hydrate(doc).ok()?;
            let cutoff = logic::minutes(&replicas::now()).unwrap_or(0) - RESULT_DAYS * 1440;
            let recent = |p: &Provenance| logic::minutes(&p.recorded).is_some_and(|m| m >= cutoff);
            let mut groups = Vec::new();
            for (id, r) in &record.reports {
                if r.status != ResultStatus::EnteredInError && recent(&r.provenance) {
                    let what = format!("{} ({})", r.display, r.provenance.clinic_name);
                    groups.push((
                        id.parse().ok()?,
                        Collection::Reports,
                        r.provenance.recorded.clone(),
                        what,
                        r.provenance.recorder,
                    ));
                }
            }
            for (id, o) in &record.observations {
                if o.report.is_none()
                    && o.status != ResultStatus::EnteredInError
                    && recent(&o.provenance)
                {
                    let what = format!("{} ({})", o.display, o.provenance.clinic_name);
                    groups.push((
                        id.parse().ok()?,
                        Collection::Observations,
                        o.provenance.recorded.clone(),
                        what,
                        o.provenance.recorder,
                    ));
                }
            }
            let rx = record
                .prescriptions
                .iter()
                .filter_map(|(id, p)| Some((id.parse().ok()?, p.display.clone())))
                .collect();
            Facts::Clinical(groups, rx)
        }
    });
    FACTS.with_borrow_mut(|c| c.insert(id, (heads, f.clone())));
    Some(f)
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
    let items = Rc::new(collect(&me));
    LAST.set(Some((version, me.user_id, items.clone())));
    items
}

fn collect(me: &shared::api::Me) -> Vec<Item> {
    let clinics: Vec<ClinicId> = me.clinics.iter().map(|c| c.id).collect();
    // Each patient's facts, by patient.
    let mut by_patient: Vec<PatientFacts> = Vec::new();
    with_core(|core| {
        for (id, kind) in &core.kinds {
            let Some(doc) = core.client.doc(*id) else { continue };
            let Some(f) = facts(*id, *kind, doc) else { continue };
            let p = kind.patient();
            match by_patient.iter_mut().find(|(q, _)| *q == p) {
                Some((_, v)) => v.push((*kind, f)),
                None => by_patient.push((p, vec![(*kind, f)])),
            }
        }
    });
    let mut out = Vec::new();
    for (patient, docs) in &by_patient {
        let mut name = String::new();
        let mut requests = Vec::new();
        let mut results = Vec::new();
        let mut drugs = Vec::new();
        for (_, f) in docs {
            match &**f {
                Facts::Patient(n, r) => {
                    name = n.clone();
                    requests.extend(
                        r.refill_requests
                            .iter()
                            .filter(|(_, q)| q.status == RefillStatus::Requested),
                    );
                }
                Facts::Clinical(g, rx) => {
                    results.extend(g.iter());
                    drugs.extend(rx.iter());
                }
                Facts::Thread(_) => {}
            }
        }
        for clinic in &clinics {
            let empty = MessageThread::default();
            let thread = docs
                .iter()
                .find_map(|(k, f)| match (k, &**f) {
                    (DocKind::MessageThread { clinic: c, .. }, Facts::Thread(t)) if c == clinic => {
                        Some(t)
                    }
                    _ => None,
                })
                .unwrap_or(&empty);
            let mut push = |kind, focus: EntryId, since: &str, what: String, state: String| {
                if thread.handled(focus) {
                    return;
                }
                let task = thread.open_task(focus);
                out.push(Item {
                    patient: *patient,
                    name: name.clone(),
                    clinic: *clinic,
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
                let Ok(focus) = id.parse() else { continue };
                let state = match (&m.read_at, m.read_by) {
                    (Some(at), Some(by)) => {
                        format!("Read by {}, {}", colleague(me, by), logic::date_time(at))
                    }
                    _ => "Unread".to_owned(),
                };
                let what: String = m.body.chars().take(80).collect();
                push(Collection::Messages, focus, &m.sent_at, what, state);
            }
            for (id, q) in &requests {
                let Ok(focus) = id.parse() else { continue };
                if q.clinic != *clinic {
                    continue;
                }
                let drug = drugs
                    .iter()
                    .find(|(rx, _)| *rx == q.prescription)
                    .map_or("a prescription", |(_, d)| d.as_str());
                let note =
                    if q.note.is_empty() { String::new() } else { format!(": “{}”", q.note) };
                push(
                    Collection::RefillRequests,
                    focus,
                    &q.requested_at,
                    format!("{drug}{note}"),
                    String::new(),
                );
            }
            for (focus, kind, recorded, what, recorder) in &results {
                if *recorder != me.user_id {
                    push(*kind, *focus, recorded, what.clone(), String::new());
                }
            }
        }
    }
    logic::sort_by_key(&mut out, logic::Order::Ascending, |i| i.since.clone());
    out
}

/// A colleague's name from the directory the device keeps, or "a colleague".
fn colleague(me: &shared::api::Me, user: UserId) -> String {
    if user == me.user_id {
        return "you".into();
    }
    me.colleagues
        .iter()
        .find(|c| c.user_id == user)
        .map_or_else(|| "a colleague".into(), |c| c.display_name.clone())
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
        Collection::Messages => "Message",
        Collection::RefillRequests => "Refill request",
        _ => "New result",
    }
}

/// The "To do" page.
#[component]
pub fn Todo(page: RwSignal<Page>) -> impl IntoView {
    let ui = expect_context::<Ui>();
    let error = RwSignal::new(None::<String>);
    let list = move || {
        let items = items(ui);
        let me = ui.me.get()?;
        let items = items.to_vec();
        if items.is_empty() {
            return Some(view! { <p class="muted">"Nothing waiting."</p> }.into_any());
        }
        let now = replicas::now();
        let rows = items
            .into_iter()
            .map(|item| {
                let key = item.focus.to_string();
                let select_id = format!("assign-{key}");
                let options: Vec<(UserId, String)> = me
                    .colleagues
                    .iter()
                    .filter(|c| c.clinic_id == item.clinic)
                    .map(|c| (c.user_id, c.display_name.clone()))
                    .collect();
                let chosen = RwSignal::new(String::new());
                let owner = item.owner.as_ref().map(|(u, n)| {
                    if *u == me.user_id { "Assigned to you".to_owned() } else { format!("Assigned to {n}") }
                });
                let age = logic::age(&now, &item.since);
                let head = format!("{} · {} · {age}", item.name, label(item.kind));
                let (what, state) = (item.what.clone(), item.state.clone());
                let (a, b, c) = (item.clone(), item.clone(), options.clone());
                let open = move |_| {
                    let target = crate::item_page(ui, a.patient, a.kind);
                    if !staff::open_patient(ui, page, a.patient, target) {
                        error.set(Some(staff::NEEDS_NETWORK.into()));
                    }
                };
                let handled = move |_| error.set(write(&b, TaskStatus::Completed, None).err());
                let assign = move |_| {
                    let pick = chosen.get_untracked();
                    match c.iter().find(|(u, _)| u.to_string() == pick) {
                        Some(o) => error.set(write(&item, TaskStatus::Requested, Some(o.clone())).err()),
                        None => error.set(Some("Choose a colleague to assign it to.".into())),
                    }
                };
                view! {
                    <li class="todo-item">
                        <button type="button" class="link" on:click=open>{head}</button>
                        <p class="body">{what}</p>
                        {(!state.is_empty()).then(|| view! { <p class="meta">{state}</p> })}
                        {owner.map(|o| view! { <p class="meta"><strong>{o}</strong></p> })}
                        <div class="inline-form">
                            <label for=select_id.clone() class="sr-only">"Assign to"</label>
                            <select id=select_id on:change=move |ev| chosen.set(event_target_value(&ev))>
                                <option value="">"Assign to…"</option>
                                {options.into_iter().map(|(u, n)| view! { <option value=u.to_string()>{n}</option> }).collect_view()}
                            </select>
                            <button type="button" class="secondary" on:click=assign>"Assign"</button>
                            <button type="button" on:click=handled>"Mark handled"</button>
                        </div>
                    </li>
                }
            })
            .collect_view();
        Some(view! { <ol class="todo">{rows}</ol> }.into_any())
    };
    view! {
        <section class="card" aria-labelledby="todo-h">
            <h2 id="todo-h">"To do"</h2>
            <p class="muted">"Messages waiting for an answer, refill requests and new results from others, oldest first."</p>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            {list}
        </section>
    }
}
