//! The account page: passkeys, which clinics may see the record, caregivers,
//! and who looked at it. All of it needs the network. Adding a passkey,
//! inviting a caregiver and new links ask for the passkey again when the
//! server wants a recent one (`api::with_reauth`).

use crate::i18n::{self, Tr, t, tf, ts};
use std::future::Future;

use leptos::prelude::*;
use leptos::task::spawn_local;

use shared::api::{AuditEntry, AuthorizedApp, Caregiver, Invitation, OpenLink, Passkey, UserRole};

use crate::api::{self, ApiError};
use crate::state::Ui;
use crate::{logic, replicas, session, webauthn};

#[wasm_bindgen::prelude::wasm_bindgen(module = "/src/vault.js")]
extern "C" {
    #[wasm_bindgen(js_name = canShare)]
    fn can_share() -> bool;
}

/// A one-time link just issued, for `who`: in a field to select by hand,
/// and a button that shares it where the device has a share sheet (phones)
/// or copies it (vault.js handles `data-hand-over`, and says what happened
/// inside this live region).
pub fn issued_link(
    id: &'static str,
    class: &'static str,
    (who, invitation): (String, Invitation),
) -> impl IntoView + use<> {
    let Invitation { link, expires_at, .. } = invitation;
    view! {
        <div class=class role="status">
            <label for=id>{tf("Give {0} this one-time link to create their passkey (valid until {1}):", &[&who, &crate::when::moment(&api::iso(expires_at))])}</label>
            <input id=id type="text" readonly prop:value=link/>
            <button type="button" class="secondary" data-hand-over=id data-shared=t("Link shared.") data-copied=t("Link copied.")
                data-failed=t("The link was not handed over: select it and copy it by hand.")>{if can_share() { Tr("Share link") } else { Tr("Copy link") }}</button>
        </div>
    }
}

pub(crate) fn report(ui: Ui, error: RwSignal<Option<String>>, e: ApiError) {
    if e == ApiError::SessionExpired {
        ui.session_expired.set(true);
    }
    error.set(Some(e.to_string()));
}

/// Fetches a list into `into` now and again each time the returned function
/// is called; a failure is reported in `error`.
pub(crate) fn loader<T, F>(
    ui: Ui,
    into: RwSignal<Option<T>>,
    error: RwSignal<Option<String>>,
    fetch: fn() -> F,
) -> impl Fn() + Copy
where
    T: Send + Sync + 'static,
    F: Future<Output = Result<T, ApiError>> + 'static,
{
    let load = move || {
        spawn_local(async move {
            match fetch().await {
                Ok(list) => into.set(Some(list)),
                Err(e) => report(ui, error, e),
            }
        })
    };
    load();
    load
}

#[component]
fn Passkeys() -> impl IntoView {
    let ui = expect_context::<Ui>();
    let keys = RwSignal::new(None::<Vec<Passkey>>);
    let error = RwSignal::new(None::<String>);
    let load = loader(ui, keys, error, api::passkeys);
    let links = RwSignal::new(None::<Vec<OpenLink>>);
    let load_links = loader(ui, links, error, api::open_links);
    let current = move || ui.me.with(|m| m.as_ref().and_then(|m| m.passkey_id));
    let add = move |_| {
        spawn_local(async move {
            let result = async {
                let started =
                    api::with_reauth(api::passkey_add_start).await.map_err(|e| e.to_string())?;
                let credential = webauthn::create_credential(started.options).await?;
                api::passkey_add_finish(&started.ceremony, &credential)
                    .await
                    .map_err(|e| e.to_string())?;
                crate::vault::signed_in().await
            };
            match result.await {
                Ok(_) => {
                    error.set(None);
                    load();
                }
                Err(e) => error.set(Some(e)),
            }
        })
    };
    view! {
        <section class="card" aria-labelledby="keys-h">
            <h2 id="keys-h">{Tr("Passkeys")}</h2>
            <p class="muted">
                {Tr("Removing a passkey at once signs out every device that signed in with it. ")}
                {Tr("Passkeys added while signed in with it stay: remove them too if you do not know them.")}
            </p>
            <p class="protection">{Tr("The copy of your record on this device is encrypted. ")}{
                if crate::vault::protected_by_passkey() { Tr("Protected by your passkey: opening it needs your passkey.") }
                else { Tr("Protected by this browser only: your passkey cannot lock it, so whoever can use this browser profile can open it.") }
            }</p>
            {move || links.get().filter(|l| !l.is_empty()).map(|list| view! {
                <div class="notice" role="status">
                    <p>{list.into_iter().map(|link|  tf("A sign-in link for your account from {0} is open until {1}. ", &[&link.issued_by.unwrap_or_else(|| ts("the portal's operator")), &crate::when::moment(&api::iso(link.expires_at))])).collect::<String>()}
                    {Tr("Whoever uses it replaces all your passkeys. If you did not ask for it, cancel it.")}</p>
                    <button type="button" on:click=move |_| spawn_local(async move {
                        match api::cancel_links().await {
                            Ok(()) => load_links(),
                            Err(e) => report(ui, error, e),
                        }
                    })>{Tr("Cancel the link")}</button>
                </div>
            })}
            {move || keys.get().map(|list| {
                let names: Vec<(uuid::Uuid, String)> = list.iter().map(|k| (k.id, k.name.clone())).collect();
                view! {
                <ul>
                    {list.into_iter().map(|k| {
                        let Passkey { id, name, created_at: created, last_used_at: used, added_with } = k;
                        let mut about = String::new();
                        if Some(id) == current() {
                            about.push_str(t(" · this device signed in with it"));
                        }
                        if let Some((_, from)) = names.iter().find(|(key, _)| Some(*key) == added_with) {
                            about.push_str(&tf(" · added while signed in with {0}", &[&from]));
                        }
                        let label = tf("passkey {0}", &[&name]);
                        let name = RwSignal::new(name);
                        let (rename_id, delete_id) = (id, id);
                        let input_id = format!("key-{id}");
                        view! {
                            <li class="inline-form">
                                <label for=input_id.clone()>{Tr("Name")}<span class="sr-only">{tf(" of {0}", &[&label])}</span></label>
                                <input id=input_id type="text" prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev))/>
                                <button type="button" on:click=move |_| {
                                    let id = rename_id;
                                    spawn_local(async move {
                                        match api::passkey_rename(id, &name.get_untracked()).await {
                                            Ok(()) => error.set(None),
                                            Err(e) => report(ui, error, e),
                                        }
                                    })
                                } aria-label=tf("Rename {0}", &[&label])>{Tr("Rename")}</button>
                                <button type="button" class="secondary" on:click=move |_| {
                                    let id = delete_id;
                                    spawn_local(async move {
                                        match api::passkey_delete(id).await {
                                            Ok(()) => load(),
                                            Err(e) => report(ui, error, e),
                                        }
                                    })
                                } aria-label=tf("Remove {0}", &[&label])>{Tr("Remove")}</button>
                                <span class="muted">{tf("added {0} · last used {1}{2}", &[&crate::when::day(&api::iso(created)), &used.map_or(ts("never"), |at| crate::when::moment(&api::iso(at))), &about])}</span>
                            </li>
                        }
                    }).collect_view()}
                </ul>
                }
            })}
            <button type="button" on:click=add>{Tr("Add a passkey on this device")}</button>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        </section>
    }
}

/// How long taking access away can be undone before the server is told.
const UNDO_SECONDS: u64 = 6;

/// Taking someone's access away: asks first, naming what it does, then
/// waits a moment in which it can be undone; only then is the server told
/// (a caregiver's sessions end at once, so undoing after would be too late).
/// Closed before the moment is over, nothing was taken away, and the list
/// still says so.
#[component]
fn TakeAway(who: String, consequence: String, act: Callback<()>) -> impl IntoView {
    let ui = expect_context::<Ui>();
    // 0: the button; 1: asking; 2 and up: waiting to act (each attempt its own number).
    let step = RwSignal::new(0u32);
    let away = tf("Take away {0}'s access", &[&who]);
    let keep = tf("Keep {0}'s access", &[&who]);
    let undo = tf("Undo: keep {0}'s access", &[&who]);
    // The focus follows the step: to the question's button, to Undo, and
    // back to the first button.
    let (start, ask, wait) = (NodeRef::new(), NodeRef::new(), NodeRef::new());
    let go = move |to: u32, node: NodeRef<leptos::html::Button>| {
        step.set(to);
        request_animation_frame(move || {
            if let Some(button) = node.get_untracked() {
                let _ = button.focus();
            }
        });
    };
    let confirm = move |_| {
        let attempt = step.get_untracked().max(1) + 1;
        go(attempt, wait);
        ui.say(tf("Taking away {0}'s access in {1} seconds.", &[&who, &UNDO_SECONDS]));
        set_timeout(
            move || {
                if step.get_untracked() == attempt {
                    step.set(0);
                    act.run(());
                }
            },
            std::time::Duration::from_secs(UNDO_SECONDS),
        );
    };
    move || {
        match step.get() {
        0 => view! { <button type="button" class="secondary" node_ref=start on:click=move |_| go(1, ask)>{away.clone()}</button> }.into_any(),
        1 => view! {
            <div class="notice" role="group" aria-label=away.clone()>
                <p>{consequence.clone()}</p>
                <button type="button" node_ref=ask on:click=confirm.clone()>{away.clone()}</button>
                <button type="button" class="secondary" on:click=move |_| go(0, start)>{keep.clone()}</button>
            </div>
        }.into_any(),
        _ => view! {
            <div class="notice" role="status">
                <p>{tf("Access goes in {0} seconds.", &[&UNDO_SECONDS])}</p>
                <button type="button" node_ref=wait aria-label=undo.clone() on:click=move |_| go(0, start)>{Tr("Undo")}</button>
            </div>
        }.into_any(),
    }
    }
}

#[component]
fn Consents() -> impl IntoView {
    let ui = expect_context::<Ui>();
    let error = RwSignal::new(None::<String>);
    let load = move || {
        spawn_local(async move {
            match api::consents().await {
                Ok(list) => ui.consents.set(list),
                Err(e) => report(ui, error, e),
            }
        })
    };
    load();
    let toggle = move |clinic, grant: bool| {
        spawn_local(async move {
            let result = if grant { api::grant(clinic).await } else { api::revoke(clinic).await };
            match result {
                Ok(()) => {
                    error.set(None);
                    load();
                    session::refresh(ui).await;
                }
                Err(e) => report(ui, error, e),
            }
        })
    };
    view! {
        <section class="card" aria-labelledby="consent-h">
            <h2 id="consent-h">{Tr("Clinics with access to your record")}</h2>
            <p class="muted">
                {Tr("A clinic you allow can read your whole record and write its own part. If you take access away, ")}
                {Tr("the clinic gets no new information, but what is already on its devices stays there.")}
            </p>
            <ul>
                {move || ui.consents.get().into_iter().map(|c| {
                    let clinic = c.clinic_id;
                    let name = c.clinic_name.clone();
                    view! {
                        <li class="inline-form">
                            <strong>{c.clinic_name.clone()}</strong>
                            {if c.granted {
                                let consequence = tf("{0} will get nothing new from your record. What is already on its devices stays there.", &[&name]);
                                view! {
                                    <span>{Tr(" has access")}</span>
                                    <TakeAway who=name.clone() consequence act=Callback::new(move |()| toggle(clinic, false))/>
                                }.into_any()
                            } else {
                                view! {
                                    <span>{Tr(" has no access")}</span>
                                    <button type="button" on:click=move |_| toggle(clinic, true)>{tf("Give {0} access", &[&name])}</button>
                                }.into_any()
                            }}
                        </li>
                    }
                }).collect_view()}
            </ul>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        </section>
    }
}

/// The patient's caregivers: invite one (reading only, or also messaging
/// and requesting refills), hand over their one-time link, issue a new link,
/// or take their access away.
#[component]
fn Caregivers() -> impl IntoView {
    let ui = expect_context::<Ui>();
    let list = RwSignal::new(None::<Vec<Caregiver>>);
    let error = RwSignal::new(None::<String>);
    let name = RwSignal::new(String::new());
    // The name left out: the one error about a field, tied to it.
    let missing = RwSignal::new(None::<String>);
    let may_message = RwSignal::new(false);
    // The last link issued, with whom it is for.
    let issued = RwSignal::new(None::<(String, Invitation)>);
    let load = loader(ui, list, error, api::caregivers);
    let show_link = move |who: String, result: Result<Invitation, ApiError>| match result {
        Ok(invitation) => {
            error.set(None);
            issued.set(Some((who, invitation)));
            load();
        }
        Err(e) => report(ui, error, e),
    };
    let invite = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let who = name.get_untracked().trim().to_owned();
        missing.set(who.is_empty().then(|| ts("Give the caregiver's name.")));
        if who.is_empty() {
            return;
        }
        spawn_local(async move {
            let may = may_message.get_untracked();
            let result = api::with_reauth(|| api::invite_caregiver(&who, may)).await;
            // What was typed stays in the form if the invitation failed.
            if result.is_ok() {
                name.set(String::new());
                may_message.set(false);
            }
            show_link(who, result);
        })
    };
    let caregiver_item = move |c: Caregiver| {
        let rights = if c.may_message { t("reads and messages") } else { t("reads only") };
        let waiting = if c.enrolled { "" } else { t(" · has not created a passkey yet") };
        let (user, who) = (c.user_id, c.display_name.clone());
        let consequence = tf(
            "{0} is signed out at once and can no longer read your record or write for you.",
            &[&who],
        );
        view! {
            <li class="inline-form">
                <strong>{c.display_name.clone()}</strong>
                <span>{format!(" {rights}{waiting}")}</span>
                <button type="button" aria-label=tf("New link for {0}", &[&who]) on:click=move |_| {
                    let who = who.clone();
                    spawn_local(async move { show_link(who, api::with_reauth(|| api::caregiver_link(user)).await) })
                }>{Tr("New link")}</button>
                <TakeAway who=c.display_name.clone() consequence act=Callback::new(move |()| {
                    spawn_local(async move {
                        match api::revoke_caregiver(user).await {
                            Ok(()) => {
                                issued.set(None);
                                load();
                            }
                            Err(e) => report(ui, error, e),
                        }
                    })
                })/>
            </li>
        }
    };
    view! {
        <section class="card" aria-labelledby="caregivers-h">
            <h2 id="caregivers-h">{Tr("Caregivers")}</h2>
            <p class="muted">{Tr("Someone you invite can read your whole record with their own passkey. If you allow it, they can also message your clinics and request refills for you.")}</p>
            {move || list.get().map(|caregivers| {
                if caregivers.is_empty() {
                    return view! { <p class="muted">{Tr("No caregivers.")}</p> }.into_any();
                }
                view! { <ul>{caregivers.into_iter().map(caregiver_item).collect_view()}</ul> }.into_any()
            })}
            {move || issued.get().map(|it| issued_link("caregiver-link", "notice", it))}
            <form class="inline-form" on:submit=invite>
                <label for="caregiver-name">{Tr("Caregiver's name")}</label>
                <input id="caregiver-name" type="text" autocomplete="off" prop:value=move || name.get()
                    aria-invalid=crate::patient::invalid(missing) aria-describedby="caregiver-name-error"
                    on:input=move |ev| name.set(event_target_value(&ev))/>
                <label>
                    <input type="checkbox" prop:checked=move || may_message.get()
                        on:change=move |ev| may_message.set(event_target_checked(&ev))/>
                    {Tr(" May message clinics and request refills")}
                </label>
                <button type="submit">{Tr("Invite")}</button>
            </form>
            {move || missing.get().map(|e| view! { <p class="error" role="alert" id="caregiver-name-error">{e}</p> })}
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        </section>
    }
}

/// The subject of an access log sentence: "You", "Dr. Okafor (Riverside
/// Family Practice)", "Ana Santos (caregiver)", or the portal's operator.
fn who_did(entry: &AuditEntry, me: Option<shared::UserId>) -> String {
    match (&entry.user_name, &entry.clinic_name) {
        _ if entry.user_id.is_some() && entry.user_id == me => ts("You"),
        (Some(name), Some(clinic)) => format!("{name} ({clinic})"),
        (Some(name), None) if entry.role == Some(UserRole::Caregiver) => {
            tf("{0} (caregiver)", &[&name])
        }
        (Some(name), None) => name.clone(),
        (None, _) => ts("The portal's operator"),
    }
}

#[component]
fn Audit() -> impl IntoView {
    let ui = expect_context::<Ui>();
    let rows = RwSignal::new(None::<Vec<AuditEntry>>);
    let error = RwSignal::new(None::<String>);
    // Loaded once, when the page opens.
    let _ = loader(ui, rows, error, api::audit);
    view! {
        <section class="card" aria-labelledby="audit-h">
            <h2 id="audit-h">{Tr("Who accessed your record")}</h2>
            {move || rows.get().map(|list| {
                if list.is_empty() {
                    return view! { <p class="muted">{Tr("Nobody yet.")}</p> }.into_any();
                }
                let me = ui.me.with_untracked(|m| m.as_ref().map(|m| m.user_id));
                view! {
                    <ul class="log">
                        {list.into_iter().map(|r| view! {
                            <li>{format!("{} {}", who_did(&r, me), t(r.action.label()))}
                                <span class="muted">{format!(" · {}", crate::when::moment(&api::iso(r.at)))}</span></li>
                        }).collect_view()}
                    </ul>
                }.into_any()
            })}
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        </section>
    }
}

/// Apps the patient let read her record (SMART on FHIR), each with a button
/// that takes its access away.
#[component]
fn Apps() -> impl IntoView {
    let ui = expect_context::<Ui>();
    let apps = RwSignal::new(None::<Vec<AuthorizedApp>>);
    let error = RwSignal::new(None::<String>);
    let load = loader(ui, apps, error, api::apps);
    view! {
        <section class="card" aria-labelledby="apps-h">
            <h2 id="apps-h">{Tr("Apps with access")}</h2>
            {move || apps.get().map(|list| {
                if list.is_empty() {
                    return view! { <p class="muted">{Tr("No apps. An app you approve can read your record until you take its access away here.")}</p> }.into_any();
                }
                list.into_iter().map(|a| {
                    let what = if a.scope.contains("patient/*.rs") { t("all of your record") } else { t("part of your record") };
                    let id = a.id.clone();
                    let remove = move |_| {
                        let id = id.clone();
                        spawn_local(async move {
                            match api::remove_app(&id).await {
                                Ok(()) => load(),
                                Err(e) => report(ui, error, e),
                            }
                        })
                    };
                    view! {
                        <p>
                            <strong>{a.app.clone()}</strong>
                            {tf(" reads {0}, since {1} ", &[&what, &crate::when::day(&api::iso(a.granted_at))])}
                            <button type="button" class="secondary" on:click=remove>{tf("Take away {0}'s access", &[&a.app])}</button>
                        </p>
                    }
                }).collect_view().into_any()
            })}
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        </section>
    }
}

/// Signing out removes this device's copy. Changes not sent yet are never
/// removed silently: the person sees how many and what, and chooses to
/// stay, to be signed out once they are sent, or to delete them, which
/// asks again. What is typed in a field and not sent is named the same way.
#[component]
fn SignOut() -> impl IntoView {
    let ui = expect_context::<Ui>();
    // 0: no question; 1: something would be lost, what now; 2: delete it?
    let step = RwSignal::new(0u8);
    let waiting = move || ui.progress.get().pending_changes;
    // Read when the person asks to sign out (drafts are not signals).
    let typed = RwSignal::new(Vec::<String>::new());
    let sign_out = move |_| {
        typed.set(crate::drafts::typed());
        if waiting() == 0 && typed.with_untracked(Vec::is_empty) {
            spawn_local(session::sign_out(ui));
        } else {
            step.set(1);
        }
    };
    let question = move || {
        let n = waiting();
        let typed = typed.get();
        (step.get() > 0 && (n > 0 || !typed.is_empty())).then(|| {
            let one = n == 1;
            let confirm = step.get() == 2;
            let said = if confirm {
                if n == 0 { ts("Delete what you typed for good? Nobody will receive it.") } else if one { ts("Delete the change listed above for good? Nobody will receive it.") } else { tf("Delete the {0} changes listed above for good? Nobody will receive them.", &[&n]) }
            } else if n == 0 {
                ts("Send it, or copy it somewhere, before you sign out.")
            } else if ui.sign_out_when_sent.get() {
                ts("You will be signed out as soon as the server has them.")
            } else if ui.online() {
                ts("They are being sent now.")
            } else {
                ts("This device is offline: they are sent when it is back online.")
            };
            let heading = if n == 0 { ts("You typed something and have not sent it. Signing out now would delete:") } else if one { ts("1 change waiting to be sent. Signing out now would delete:") } else { tf("{0} changes waiting to be sent. Signing out now would delete:", &[&n]) };
            // "Sign out once sent" would still delete what is typed: offered
            // only when nothing is.
            let once_sent = n > 0 && typed.is_empty();
            let lines = replicas::unsent().into_iter().chain(typed.iter().map(|text| tf("Typed, not sent: “{0}”", &[&logic::opening(text)])));
            view! {
                <div class="notice" role="alertdialog" aria-labelledby="unsent-h">
                    <p id="unsent-h"><strong>{heading}</strong></p>
                    <ul>{lines.map(|l| view! { <li>{l}</li> }).collect_view()}</ul>
                    <p class:error=confirm>{said}</p>
                    <button type="button" on:click=move |_| {
                        ui.sign_out_when_sent.set(false);
                        step.set(if confirm { 1 } else { 0 });
                    }>{if confirm { Tr("Keep them") } else { Tr("Stay signed in") }}</button>
                    " "
                    {(!confirm && once_sent).then(|| view! {
                        <button type="button" on:click=move |_| ui.sign_out_when_sent.set(true)>{Tr("Sign out once sent")}</button>
                        " "
                    })}
                    <button type="button" class="secondary" on:click=move |_| {
                        if confirm { spawn_local(session::sign_out(ui)) } else { step.set(2) }
                    }>{if confirm { Tr("Delete and sign out") } else { Tr("Sign out and delete them") }}</button>
                </div>
            }
        })
    };
    // Every other device's session ends now; this one's once its own
    // sign-out goes ahead (after the same question about waiting changes).
    let failed = RwSignal::new(None::<String>);
    let everywhere = move |click| {
        // This device's socket closes first, or its closing would read as
        // a session ended elsewhere.
        crate::sync::disconnect();
        spawn_local(async move {
            match api::logout_all().await {
                Ok(()) => sign_out(click),
                Err(e) => {
                    failed.set(Some(e.to_string()));
                    crate::sync::connect();
                }
            }
        })
    };
    view! {
        <button type="button" class="secondary" on:click=sign_out>{Tr("Sign out and remove this device's copy")}</button>
        " "
        <button type="button" class="secondary" on:click=everywhere disabled=move || !ui.online()>{Tr("Sign out on every device")}</button>
        {move || failed.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        {question}
    }
}

/// The app's language on this device. A device setting, not the account's:
/// it stays after sign-out, so whoever reads Spanish signs in again in
/// Spanish (and a shared device keeps what was picked last).
#[component]
fn Language() -> impl IntoView {
    let ui = expect_context::<Ui>();
    // What the list shows: back to the language in use if a switch fails.
    let shown = RwSignal::new(ui.language.get_untracked());
    let error = RwSignal::new(None::<&'static str>);
    let change = move |ev| {
        let picked = event_target_value(&ev);
        let Some(&(lang, _)) = i18n::LANGUAGES.iter().find(|l| l.0 == picked) else { return };
        shown.set(lang);
        spawn_local(async move {
            match i18n::choose(ui, lang).await {
                // Every view is built anew: the focus goes back to the list.
                Ok(()) => crate::drafts::focus_soon("language".into()),
                Err(e) => {
                    shown.set(ui.language.get_untracked());
                    error.set(Some(e));
                }
            }
        })
    };
    view! {
        <p class="inline-form">
            <label for="language">{Tr("Language")}</label>
            <select id="language" prop:value=move || shown.get() on:change=change
                aria-describedby="language-error">
                {i18n::LANGUAGES.iter().map(|&(lang, name)| view! { <option value=lang lang=lang>{name}</option> }).collect_view()}
            </select>
        </p>
        {move || error.get().map(|e| view! { <p class="error" role="alert" id="language-error">{e}</p> })}
    }
}

#[component]
pub fn Account() -> impl IntoView {
    let ui = expect_context::<Ui>();
    // Consents, caregivers and the access log are the patient's own to
    // manage; a caregiver sees only their passkeys.
    let is_patient =
        move || ui.me.with(|m| m.as_ref().is_some_and(|m| m.role == UserRole::Patient));
    view! {
        <section class="card">
            <h2>{Tr("Account")}</h2>
            <p>{move || ui.me.with(|m| m.as_ref().map(|m| tf("Signed in as {0} ({1})", &[&m.display_name, &t(m.role.code())])))}</p>
            <Language/>
            <SignOut/>
        </section>
        {move || (!ui.online()).then(|| view! { <p class="notice">{Tr("You are offline: account settings need the network.")}</p> })}
        <Passkeys/>
        <Show when=is_patient>
            <Consents/>
            <Caregivers/>
            <Apps/>
            <Audit/>
        </Show>
    }
}
