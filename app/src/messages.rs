//! Messages between a patient (or caregiver) and each clinic: a thread per
//! clinic holds conversations, each with a subject (`logic::conversations`).
//! One conversation is open at a time, the latest until the person opens
//! another; what the other side wrote in it is marked read when it is open,
//! and the others show how many messages wait unread.

use crate::i18n::{Tr, t, tf, ts};
use leptos::prelude::*;
use shared::record;
use shared::schema::Message;
use shared::status::Side;
use shared::{ClinicId, DocId, EntryId, PatientId};

use crate::drafts::{self, Draft};
use crate::logic::{self, Conversation};
use crate::patient::{StaffClinic, invalid};
use crate::reads::{self, PatientData};
use crate::replicas;
use crate::state::Ui;
use crate::when;

/// `Ui::conversation`.
type Opened = RwSignal<Vec<(DocId, String)>>;

/// Opens the conversation `key` of `doc` (where Messages shows it).
pub fn open(opened: Opened, doc: DocId, key: String) {
    opened.update(|o| {
        o.retain(|(d, _)| *d != doc);
        o.push((doc, key));
    });
}

fn key<'a>(conversation: &'a Conversation<'_>) -> &'a str {
    conversation.first.as_deref().unwrap_or_default()
}

/// The open conversation of `doc` among `all`: the one opened, else the latest.
fn open_in<'c, 'a>(
    opened: Opened,
    doc: DocId,
    all: &'c [Conversation<'a>],
) -> Option<&'c Conversation<'a>> {
    let chosen = opened.with(|o| o.iter().find(|(d, _)| *d == doc).map(|(_, k)| k.clone()));
    chosen.and_then(|k| all.iter().find(|c| key(c) == k)).or(all.first())
}

/// Messages from the clinics not yet read on the patient's side: the count
/// beside Messages in the navigation.
pub fn unread(ui: Ui, patient: PatientId) -> usize {
    ui.version.track();
    let data = reads::patient_data(patient);
    data.threads
        .iter()
        .flat_map(|(_, _, t)| t.messages.values())
        .filter(|m| m.side == Side::Clinic && m.read_at.is_none())
        .count()
}

/// Sends a message into the thread `doc`: a reply in the conversation that
/// `first` starts, or the first message of a new one on `topic` (the
/// message's opening words if the person gave none), about a result if
/// `about` names one. The new message's id.
pub fn send(
    ui: Ui,
    doc: DocId,
    first: Option<EntryId>,
    topic: &str,
    about: Option<EntryId>,
    body: &str,
) -> Result<EntryId, String> {
    let me = ui.me.get_untracked().ok_or(t("Sign in again to send this."))?;
    let id = EntryId::mint();
    let topic = match topic.trim() {
        "" => logic::opening(body),
        given => given.to_owned(),
    };
    replicas::edit(doc, |tx, who, at| {
        let message = Message {
            topic: first.is_none().then_some(topic),
            in_response_to: first,
            about: first.is_none().then_some(about).flatten(),
            ..Message::new(who.user, me.display_name.clone(), who.side(), at, body.trim())
        };
        record::add(tx, id, &message)
    })?;
    Ok(id)
}

fn message_state(message: &Message, synced: bool) -> String {
    match (&message.read_at, synced) {
        (Some(at), _) => tf("Read {0}", &[&when::moment(at)]),
        (None, true) => ts("Delivered"),
        (None, false) => ts("Sent, waiting for the network"),
    }
}

/// A reply in a conversation (`first`), or a new conversation with a
/// subject (`first` is none).
#[component]
fn Compose(doc: DocId, to: String, first: Option<EntryId>, opened: Opened) -> impl IntoView {
    let ui = expect_context::<Ui>();
    let input_id = match first {
        Some(first) => format!("reply-{first}"),
        None => format!("compose-{doc}"),
    };
    let subject_id = format!("subject-{doc}");
    let body = Draft::new(input_id.clone());
    let subject = Draft::new(subject_id.clone());
    let said = to.clone();
    let error = RwSignal::new(None::<String>);
    let error_id = format!("{input_id}-error");
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let text = body.get_untracked();
        if text.trim().is_empty() {
            error.set(Some(ts("Write a message first.")));
            return;
        }
        match send(ui, doc, first, &subject.get_untracked(), None, &text) {
            Ok(id) => {
                body.clear();
                subject.clear();
                error.set(None);
                if first.is_none() {
                    // The new conversation opens, with its message.
                    open(opened, doc, id.to_string());
                }
                ui.say(if ui.online_untracked() {
                    tf("Message sent to {0}", &[&said])
                } else {
                    tf(
                        "Message to {0} kept on this device; it is sent when you are online",
                        &[&said],
                    )
                });
            }
            // What was typed stays in the boxes.
            Err(e) => error.set(Some(e)),
        }
    };
    let new = first.is_none();
    view! {
        <form class=if new { "compose new-conversation" } else { "compose" } on:submit=submit>
            {new.then(|| view! {
                <h3>{Tr("New conversation")}</h3>
                <label for=subject_id.clone()>{Tr("Subject")}</label>
                <input id=subject_id.clone() type="text" maxlength="150" prop:value=move || subject.get()
                    on:input=move |ev| subject.set(event_target_value(&ev))/>
            })}
            <label for=input_id.clone()>{if new { tf("Your message to {0}", &[&to]) } else { tf("Your reply to {0}", &[&to]) }}</label>
            <textarea id=input_id.clone() rows="3" prop:value=move || body.get() on:input=move |ev| body.set(event_target_value(&ev))
                aria-invalid=invalid(error) aria-describedby=error_id.clone()></textarea>
            <button type="submit" aria-label=if new { tf("Send to {0}", &[&to]) } else { tf("Send reply to {0}", &[&to]) }>
                {if new { Tr("Send") } else { Tr("Send reply") }}
            </button>
            {move || error.get().map(|e| view! { <p class="error" role="alert" id=error_id.clone()>{e}</p> })}
        </form>
    }
}

/// Above a patient's conversations: messages are not for emergencies, and
/// how soon the clinic answers (its admin says, `Me::care`, kept offline).
fn emergency_notice(ui: Ui, clinic: ClinicId, name: &str) -> impl IntoView + use<> {
    let contact = ui.me.with_untracked(|m| {
        m.as_ref().and_then(|m| m.care.iter().find(|c| c.id == clinic).cloned())
    });
    let answer = contact
        .as_ref()
        .map(|c| tf(" {0} answers within {1} working days.", &[&name, &c.reply_days]));
    let phone = contact.map(|c| c.phone).filter(|p| !p.is_empty()).map(|phone| {
        view! { {Tr(" To talk to someone sooner, call ")} <a href=format!("tel:{phone}")>{phone.clone()}</a> "." }
    });
    view! {
        <p class="emergency"><strong>{Tr("Not for emergencies:")}</strong>
            {Tr(" in an emergency, call your local emergency number.")} {answer} {phone}</p>
    }
}

/// A way to the trend of the result a conversation is about (its subject
/// names the result).
fn about_line(
    ui: Ui,
    data: &PatientData,
    clinic: ClinicId,
    result: EntryId,
) -> Option<impl IntoView + use<>> {
    let o = data.clinic_record(clinic)?.observations.get(&result.to_string())?;
    let name = shared::catalog::plain_name(&o.loinc)
        .map_or_else(|| o.display.clone(), |n| t(n).to_owned());
    let code = o.loinc.clone();
    Some(view! {
        <p class="about-result">
            <button type="button" class="link" on:click=move |_| crate::patient::open_trend(ui, code.clone())>{tf("View {0} trend", &[&name])}</button>
        </p>
    })
}

/// One conversation, open: its messages and a reply box.
fn conversation_view(
    ui: Ui,
    data: &PatientData,
    (doc, clinic): (DocId, ClinicId),
    c: &Conversation<'_>,
    staff: StaffClinic,
    to: String,
    opened: Opened,
) -> impl IntoView + use<> {
    let my_side = if staff.is_some() { Side::Clinic } else { Side::Patient };
    let items = c
        .messages
        .iter()
        .map(|&(mid, m)| {
            let mine = m.side == my_side;
            let state = if mine {
                Some(message_state(
                    m,
                    replicas::entry_confirmed(doc, shared::schema::Collection::Messages, mid),
                ))
            } else {
                // Staff see who of the clinic read a patient's message.
                staff.and(m.read_at.as_ref()).map(|at| {
                    let by = ui.me.with_untracked(|me| {
                        me.as_ref()?
                            .colleagues
                            .iter()
                            .find(|c| Some(c.user_id) == m.read_by)
                            .map(|c| c.display_name.clone())
                    });
                    tf(
                        "Read by {0}, {1}",
                        &[&by.as_deref().unwrap_or(t("a colleague")), &when::moment(at)],
                    )
                })
            };
            view! {
                <li class=if mine { "msg mine" } else { "msg theirs" }>
                    <p class="meta">{m.author_name.clone()} " · " {when::moment(&m.sent_at)}</p>
                    <p class="body">{m.body.clone()}</p>
                    {state.map(|s| view! { <p class="state">{s}</p> })}
                </li>
            }
        })
        .collect_view();
    let heading = format!("conv-{doc}");
    let first = c.first.as_deref().and_then(|f| f.parse().ok());
    view! {
        <li class="conversation open">
            <h3 id=heading tabindex="-1">{c.title()}</h3>
            {c.about().and_then(|r| about_line(ui, data, clinic, r))}
            <ol class="thread">{items}</ol>
            <Compose doc to first opened/>
        </li>
    }
}

#[component]
pub fn Messages(patient: PatientId, staff: StaffClinic) -> impl IntoView {
    let ui = expect_context::<Ui>();
    let my_side = if staff.is_some() { Side::Clinic } else { Side::Patient };
    let opened = ui.conversation;
    // What the other side wrote in an open conversation is marked read.
    Effect::new(move |_| {
        ui.version.track();
        opened.track();
        let data = reads::patient_data(patient);
        for (doc, clinic, thread) in &data.threads {
            if staff.is_some_and(|s| s != *clinic) {
                continue;
            }
            let all = logic::conversations(thread);
            let Some(open) = open_in(opened, *doc, &all) else { continue };
            let unread: Vec<EntryId> = open
                .messages
                .iter()
                .filter(|(_, m)| m.side != my_side && m.read_at.is_none())
                .filter_map(|(id, _)| id.parse().ok())
                .collect();
            if unread.is_empty() {
                continue;
            }
            let _ = replicas::edit(*doc, |tx, who, at| {
                for id in &unread {
                    record::mark_read(tx, *id, who.user, at)?;
                }
                Ok(())
            });
        }
    });
    move || {
        ui.version.track();
        let data = reads::patient_data(patient);
        let threads: Vec<_> =
            data.threads.iter().filter(|(_, c, _)| staff.is_none_or(|s| s == *c)).collect();
        if threads.is_empty() {
            return view! { <section class="card"><h2>{Tr("Messages")}</h2><p class="muted">{Tr("No conversations on this device yet.")}</p></section> }.into_any();
        }
        threads
            .into_iter()
            .map(|&(doc, clinic, ref thread)| {
                let name = reads::clinic_name(ui, clinic, Some(&data));
                let to = if staff.is_some() { ts("the patient") } else { name.clone() };
                let all = logic::conversations(thread);
                let shown = open_in(opened, doc, &all).map(|c| key(c).to_owned());
                let items = all
                    .iter()
                    .map(|c| {
                        if shown.as_deref() == Some(key(c)) {
                            return conversation_view(ui, &data, (doc, clinic), c, staff, to.clone(), opened).into_any();
                        }
                        let k = key(c).to_owned();
                        let unread = c.unread(my_side);
                        let choose = move |_| {
                            open(opened, doc, k.clone());
                            drafts::focus_soon(format!("conv-{doc}"));
                        };
                        view! {
                            <li class="conversation">
                                <button type="button" class="conversation-open" aria-expanded="false" on:click=choose>
                                    <strong>{c.title()}</strong>
                                    <span class="muted">{format!(" · {}", when::day(c.last_at()))}</span>
                                    {(unread > 0).then(|| view! { <span class="unread">{tf(" · {0} unread", &[&unread])}</span> })}
                                </button>
                            </li>
                        }
                        .into_any()
                    })
                    .collect_view();
                let notice = staff.is_none().then(|| emergency_notice(ui, clinic, &name));
                view! {
                    <section class="card" aria-label=tf("Messages with {0}", &[&name])>
                        <h2>{tf("Messages with {0}", &[&name])}</h2>
                        {notice}
                        <ul class="conversations">{items}</ul>
                        <Compose doc to first=None opened/>
                    </section>
                }
            })
            .collect_view()
            .into_any()
    }
}

/// The conversations about the results of `code` (a clinician's comment,
/// or a question about one), as the trend shows them: who wrote first and
/// what, on which result, and a way to the conversation. Staff of a clinic
/// may write a comment on their clinic's latest result of the test.
pub fn result_comments(
    ui: Ui,
    data: &PatientData,
    code: &str,
    staff: StaffClinic,
) -> impl IntoView + use<> {
    let mut items = Vec::new();
    for (doc, clinic, thread) in &data.threads {
        if staff.is_some_and(|s| s != *clinic) {
            continue;
        }
        let Some(record) = data.clinic_record(*clinic) else { continue };
        for c in logic::conversations(thread) {
            let Some(result) = c.about().and_then(|r| record.observations.get(&r.to_string()))
            else {
                continue;
            };
            let Some(&(_, first)) = c.messages.first().filter(|_| result.loinc == code) else {
                continue;
            };
            let (doc, k) = (*doc, key(&c).to_owned());
            let replies = c.messages.len() - 1;
            items.push(view! {
                <li class="comment">
                    <p class="meta">{tf("{0} · {1} · on the result of {2}", &[&first.author_name, &when::moment(&first.sent_at), &when::day(&result.effective)])}</p>
                    <p class="body">{first.body.clone()}</p>
                    <button type="button" class="link" on:click=move |_| {
                        open(ui.conversation, doc, k.clone());
                        ui.page.update(|p| *p = match *p {
                            crate::Page::Chart(patient, _) => crate::Page::Chart(patient, crate::Tab::Messages),
                            _ => crate::Page::Record(crate::Tab::Messages),
                        });
                    }>{match replies { 0 => ts("Reply in Messages"), 1 => ts("Open the conversation (1 reply)"), n => tf("Open the conversation ({0} replies)", &[&n]) }}</button>
                </li>
            });
        }
    }
    let form = comment_form(ui, data, staff, code);
    (!items.is_empty() || form.is_some()).then(|| view! {
        <section class="comments" aria-labelledby="comments-h">
            <h3 id="comments-h">{if staff.is_some() { Tr("Comments to the patient") } else { Tr("Comments and questions") }}</h3>
            <ul>{items}</ul>
            {form}
        </section>
    })
}

/// A clinician's comment on the latest result of `code` their clinic
/// recorded: the first message of a conversation about it, which the
/// patient reads beside the result and may answer. For the patient
/// (`staff` is none), a question about their latest result of `code` to
/// the clinic that recorded it, which lands in that clinic's To do.
fn comment_form(
    ui: Ui,
    data: &PatientData,
    staff: StaffClinic,
    code: &str,
) -> Option<impl IntoView + use<>> {
    let latest_of = |clinic: ClinicId| {
        data.clinic_record(clinic)?
            .observations
            .iter()
            .filter(|(_, o)| {
                o.loinc == code && o.status != shared::status::ResultStatus::EnteredInError
            })
            .max_by(|a, b| a.1.effective.cmp(&b.1.effective))
            .map(|(id, o)| (clinic, id, o))
    };
    let (clinic, id, latest) = match staff {
        Some(clinic) => latest_of(clinic)?,
        None => data
            .threads
            .iter()
            .filter_map(|t| latest_of(t.1))
            .max_by(|a, b| a.2.effective.cmp(&b.2.effective))?,
    };
    let (doc, _, _) = data.threads.iter().find(|t| t.1 == clinic)?;
    let doc = *doc;
    let result: EntryId = id.parse().ok()?;
    let name = shared::catalog::plain_name(&latest.loinc)
        .map_or_else(|| latest.display.clone(), |n| t(n).to_owned());
    let day = when::day(&latest.effective);
    let clinic_name = reads::clinic_name(ui, clinic, Some(data));
    let (topic, label, button, empty, sent) = match staff {
        Some(_) => (
            tf("Your {0} result of {1}", &[&name, &day]),
            tf("Comment for the patient on the result of {0}", &[&day]),
            ts("Send comment"),
            ts("Write the comment first."),
            ts("Comment sent to the patient"),
        ),
        None => (
            tf("Question about my {0} result of {1}", &[&name, &day]),
            tf("Ask {0} about your result of {1}", &[&clinic_name, &day]),
            ts("Send question"),
            ts("Write your question first."),
            tf("Question sent to {0}", &[&clinic_name]),
        ),
    };
    let input_id = format!("comment-{result}");
    let text = Draft::new(input_id.clone());
    let error = RwSignal::new(None::<String>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = text.get_untracked();
        if body.trim().is_empty() {
            error.set(Some(empty.clone()));
            return;
        }
        match send(ui, doc, None, &topic, Some(result), &body) {
            Ok(_) => {
                text.clear();
                error.set(None);
                ui.say(sent.clone());
            }
            Err(e) => error.set(Some(e)),
        }
    };
    Some(view! {
        <form class="compose comment-form" on:submit=submit>
            <label for=input_id.clone()>{label}</label>
            <textarea id=input_id.clone() rows="3" prop:value=move || text.get()
                on:input=move |ev| { text.set(event_target_value(&ev)); error.set(None); }
                aria-invalid=invalid(error) aria-describedby="comment-error"></textarea>
            <button type="submit">{button}</button>
            {move || error.get().map(|e| view! { <p class="error" role="alert" id="comment-error">{e}</p> })}
        </form>
    })
}
