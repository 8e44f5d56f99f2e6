//! The session's lifecycle: start (read this device's copy, then the
//! server's), refresh (who is signed in, which records), sign-out, and
//! forgetting this device's copy.
//!
//! Above the replicas and the socket: it gives `sync` the functions it
//! calls (`sync::Link`), so neither `sync` nor `replicas` imports it.

use crate::i18n::{t, tf};
use std::cell::Cell;

use automerge::ActorId;
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::ClinicId;
use shared::policy::{Principal, Role};

use shared::api::{Me, UserRole};

use crate::api::{self, ApiError};
use crate::state::{Notice, Ui};
use crate::{Page, Tab, download, drafts, logic, persist, replicas, summary, sync, vault};

fn principal_of(me: &Me) -> Option<Principal> {
    let clinics: Vec<ClinicId> = me.clinics.iter().map(|c| c.id).collect();
    let role = match me.role {
        UserRole::Patient => Role::Patient { patient: me.patient_id? },
        UserRole::Caregiver => {
            Role::Caregiver { patient: me.patient_id?, may_message: me.may_message() }
        }
        UserRole::Provider => Role::Provider { clinics },
        UserRole::Admin => Role::ClinicAdmin { clinic: *clinics.first()? },
    };
    // The patient side's are the clinics it consents to (it asks them for appointments).
    let clinic_names = if me.patient_id.is_some() {
        me.care.iter().map(|c| (c.id, c.name.clone())).collect()
    } else {
        me.clinics.iter().map(|c| (c.id, c.name.clone())).collect()
    };
    let colleagues =
        me.colleagues.iter().map(|c| (c.clinic_id, c.user_id, c.display_name.clone())).collect();
    Some(Principal {
        user: me.user_id,
        role,
        name: me.display_name.clone(),
        clinic_names,
        colleagues,
    })
}

/// Edits from now on are `me`'s, with this session's actor id.
fn set_me(me: &Me) {
    let actor = logic::hex(&me.actor_id).map(|b| ActorId::from(b.as_slice()));
    replicas::sign_in(principal_of(me), actor);
}

/// Opens local storage, shows what is there, then refreshes from the server.
pub async fn start(ui: Ui) {
    replicas::init(ui);
    sync::init(sync::Link {
        ui,
        join: replicas::join,
        receive: replicas::receive,
        online: |ui| spawn_local(refresh(ui)),
        relist: |ui| spawn_local(refresh(ui)),
    });
    let stored = persist::load().await;
    LOGOUT_OWED.set(stored.logout_owed);
    // A copy sealed under a passkey: nothing is read or synced until the
    // passkey opens it (`sign_in`).
    if stored.sealed {
        ui.sealed.set(true);
        ui.started.set(true);
    } else {
        open(ui, stored).await;
    }
}

/// Shows the copy read from this device, then refreshes from the server.
/// The Results page a patient opens on shows from the record's summary
/// while the documents load after it (`summary`).
async fn open(ui: Ui, mut stored: persist::Stored) {
    ui.last_synced.set(stored.last_synced.clone());
    ui.undelivered.set(stored.undelivered.clone());
    ui.pins.set(stored.pins.clone());
    ui.recent.set(stored.recent.clone());
    ui.seen_results.set(stored.seen_results.clone());
    download::restore(stored.downloads.clone());
    if let Some(me) = &stored.me {
        set_me(me);
    }
    let first =
        ui.page.get_untracked() == Page::Record(Tab::Results) && summary::show(&stored, ui.page);
    replicas::restore_later(&mut stored);
    if let Some(me) = stored.me {
        ui.me.set(Some(me));
        ui.docs.set(stored.docs);
        if first {
            ui.started.set(true);
            after_paint().await;
        }
        // Loads the documents (`replicas::with_core`).
        replicas::bump();
        crate::patient::mark("record-loaded");
    }
    ui.started.set(true);
    refresh(ui).await;
}

/// Resolves once the browser has painted what the views built.
async fn after_paint() {
    let painted = js_sys::Promise::new(&mut |resolve, _| {
        request_animation_frame(move || {
            set_timeout(
                move || drop(resolve.call0(&wasm_bindgen::JsValue::NULL)),
                Default::default(),
            )
        })
    });
    let _ = wasm_bindgen_futures::JsFuture::from(painted).await;
}

/// Signs in with a passkey through the server; its PRF output (same
/// gesture) opens this device's sealed copy, or makes or extends the
/// device's key. Offline, a sealed copy opens with the passkey alone. A
/// passkey the server refuses (removed) leaves the copy sealed, and so does
/// one that cannot open it (another person's): its new session ends.
pub async fn sign_in(ui: Ui) -> Result<(), String> {
    if !ui.sealed.get_untracked() {
        login().await?;
        signed_in(ui).await;
        return Ok(());
    }
    if ui.online_untracked() {
        login().await?;
        owe_logout(false);
        if let Err(e) = vault::signed_in().await {
            let _ = api::logout().await;
            return Err(e);
        }
    } else {
        vault::unlock().await?;
    }
    ui.sealed.set(false);
    open(ui, persist::read().await).await;
    Ok(())
}

async fn login() -> Result<(), String> {
    let started = api::login_start().await.map_err(|e| e.to_string())?;
    let credential = crate::webauthn::get_assertion(started.options).await?;
    api::login_finish(&started.ceremony, &credential).await.map_err(|e| e.to_string())?;
    Ok(())
}

/// Gives up a sealed copy nobody here can open (its passkey is gone).
pub async fn discard_sealed(ui: Ui) {
    persist::clear().await;
    ui.sealed.set(false);
}

thread_local! {
    /// Signed out offline: the server has not heard of it yet. Kept in
    /// storage too, so a reload before the network returns does not sign
    /// the person in again with the session still open on the server.
    static LOGOUT_OWED: Cell<bool> = const { Cell::new(false) };
}

fn owe_logout(owed: bool) {
    LOGOUT_OWED.set(owed);
    persist::save_logout_owed(owed);
}

/// A new session began on this device (sign-in, enrollment): a sign-out
/// still owed can no longer be sent (its cookie is replaced; the old
/// session idles out on the server), and must not end the new one.
///
/// The refresh comes first, which refuses another person while changes
/// wait here; only then is this device's key wrapped for the passkey (so
/// a refused person's passkey never opens the copy).
pub async fn signed_in(ui: Ui) {
    owe_logout(false);
    ui.session_expired.set(false);
    refresh(ui).await;
    if !ui.session_expired.get_untracked() && !ui.sealed.get_untracked() {
        let _ = vault::signed_in().await;
    }
}

/// Fetches the signed-in user and the document list, then syncs. Without a
/// network the local copies stay in use. A sign-out made offline ends its
/// session on the server first, and nobody is signed in.
pub async fn refresh(ui: Ui) {
    if ui.sealed.get_untracked() {
        return;
    }
    if LOGOUT_OWED.get() {
        owe_logout(api::logout().await == Err(ApiError::Offline));
        return;
    }
    match api::me().await {
        Ok((me, answer)) => {
            if let Some(previous) = ui.me.get_untracked().filter(|p| p.user_id != me.user_id) {
                // Someone else signed in on this device. Their arrival
                // would clear the previous person's copy; if it holds
                // changes not sent yet, the simplest safe course is to
                // refuse: the new session ends at once and the previous
                // person must sign in to send them (or sign out, choosing
                // to discard them). Keeping both would mix two people's
                // records in one copy.
                if replicas::progress().pending_changes > 0 {
                    let _ = api::logout().await;
                    ui.session_expired.set(true);
                    ui.notice.set(Some(Notice::SessionEnded( tf("{0} has changes on this device that are not sent yet, so nobody else can sign in here until {0} signs in again to send them, or signs out.", &[&previous.display_name]))));
                    return;
                }
                forget_local(ui).await;
            }
            ui.session_expired.set(false);
            // The copy was cleared above, or this session is not one this
            // page started (no passkey here: only the browser can keep it).
            vault::make_key().await;
            let changed = persist::save_me(&answer);
            set_me(&me);
            let staff = me.is_staff();
            // The same answer as before: setting it again would build every
            // view again, losing what is typed in them (a search, a form).
            if changed || ui.me.with_untracked(Option::is_none) {
                ui.me.set(Some(me));
            }
            let listed = if staff { offline_set(ui).await } else { api::documents().await };
            match listed {
                Ok(docs) => {
                    listed_docs(ui, docs);
                    if ui.notice.with_untracked(|n| matches!(n, Some(Notice::RefreshFailed(_)))) {
                        ui.notice.set(None);
                    }
                }
                Err(ApiError::SessionExpired) => ui.session_expired.set(true),
                Err(ApiError::AccessRemoved) => return access_removed(ui).await,
                // Offline: what is on the device stays; asked again when
                // the connection opens.
                Err(ApiError::Offline) => sync::owe_refresh(),
                Err(e) => {
                    sync::owe_refresh();
                    ui.notice.set(Some(Notice::RefreshFailed(e.to_string())));
                }
            }
            sync::connect();
            report_removals(staff).await;
            download::send_owed().await;
        }
        Err(ApiError::AccessRemoved) => access_removed(ui).await,
        Err(ApiError::SessionExpired) => {
            if ui.me.get_untracked().is_some() {
                ui.session_expired.set(true);
            }
        }
        // Offline, or no API: keep whatever is local.
        Err(_) => {
            if ui.me.get_untracked().is_some() {
                sync::owe_refresh();
                sync::connect();
            }
        }
    }
}

/// Clinic staff keep only some patients on the device (issue 17 part 2):
/// the clinic's work today, as the server knows it, and those pinned or
/// opened recently.
async fn offline_set(ui: Ui) -> Result<Vec<shared::api::DocumentInfo>, ApiError> {
    let mut wanted = ui.pins.get_untracked();
    wanted.extend(ui.recent.get_untracked());
    wanted.truncate(shared::api::OfflineSet::MAX_PATIENTS);
    api::offline_documents(&wanted).await
}

fn listed_docs(ui: Ui, docs: Vec<shared::api::DocumentInfo>) {
    persist::save_documents(&docs);
    replicas::list(&docs);
    ui.docs.set(docs);
    replicas::bump();
}

/// Clinic staff pinned, unpinned or opened a patient: the device keeps
/// the new offline set (dropping documents no longer in it that hold
/// nothing unsent). Offline, the next refresh does it.
pub async fn keep(ui: Ui) {
    if let Ok(docs) = offline_set(ui).await {
        listed_docs(ui, docs);
    }
}

/// Tells the server which copies this device removed since it last could.
/// Only clinic staff's access ends with a patient's consent; a patient's or
/// caregiver's ends with the account (`access_removed`), so theirs are
/// not reported.
async fn report_removals(staff: bool) {
    let mut owed = replicas::removals_owed();
    owed.truncate(shared::api::RemovedCopies::MAX_DOCS);
    if owed.is_empty() || (staff && api::removed_copies(&owed).await.is_err()) {
        return;
    }
    replicas::removals_reported(&owed);
}

/// The account was revoked (a caregiver the patient removed, a user their
/// clinic removed): nothing of the record may stay on this device. What
/// the person wrote and never delivered is listed for them first (kept
/// until they dismiss it), then every copy goes.
async fn access_removed(ui: Ui) {
    let unsent = replicas::unsent();
    sync::disconnect();
    forget_local(ui).await;
    // What was never delivered outlives the copy, under a key of its own.
    vault::make_key().await;
    ui.undelivered.update(|list| list.extend(unsent));
    persist::save_undelivered(&ui.undelivered.get_untracked());
    ui.me.set(None);
    ui.docs.set(Vec::new());
    ui.session_expired.set(false);
    ui.notice.set(Some(Notice::SessionEnded(
        t("Your access to this record was taken away, so this device no longer keeps a copy of it.")
            .into(),
    )));
    replicas::bump();
}

/// Signs out: ends the session and forgets this device's copies, changes
/// not sent yet included: callers ask first (the account page lists them
/// and offers to wait). The socket is closed first, so its closing is not
/// taken for an ended session.
pub async fn sign_out(ui: Ui) {
    ui.sign_out_when_sent.set(false);
    sync::disconnect();
    let owed = api::logout().await == Err(ApiError::Offline);
    forget_local(ui).await;
    owe_logout(owed);
    ui.me.set(None);
    ui.docs.set(Vec::new());
    ui.session_expired.set(false);
    replicas::bump();
}

async fn forget_local(ui: Ui) {
    ui.pins.set(Vec::new());
    ui.recent.set(Vec::new());
    ui.seen_results.set(String::new());
    download::forget();
    drafts::forget_all();
    replicas::forget_all();
    persist::clear().await;
}
