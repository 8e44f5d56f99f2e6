//! The session's lifecycle: start (read this device's copy, then the
//! server's), refresh (who is signed in, which records), sign-out, and
//! forgetting this device's copy.
//!
//! Above the replicas and the socket: it gives `sync` the functions it
//! calls (`sync::Link`), so neither `sync` nor `replicas` imports it.

use std::cell::Cell;

use automerge::ActorId;
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::ClinicId;
use shared::policy::{Principal, Role};

use shared::api::{Me, UserRole};

use crate::api::{self, ApiError};
use crate::state::{Notice, Ui};
use crate::{download, logic, persist, replicas, sync};

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
    let clinic_names = me.clinics.iter().map(|c| (c.id, c.name.clone())).collect();
    Some(Principal { user: me.user_id, role, name: me.display_name.clone(), clinic_names })
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
        online: |ui| spawn_local(back_online(ui)),
    });
    let stored = persist::load().await;
    ui.last_synced.set(stored.last_synced.clone());
    ui.undelivered.set(stored.undelivered.clone());
    download::restore(stored.downloads.clone());
    if let Some(me) = &stored.me {
        set_me(me);
    }
    replicas::restore(&stored);
    if let Some(me) = stored.me {
        ui.me.set(Some(me));
        ui.docs.set(stored.docs);
        replicas::bump();
    }
    ui.started.set(true);
    refresh(ui).await;
}

/// Back online: a sign-out made offline ends its session on the server
/// now (else the next refresh would sign the person in again); otherwise
/// the refresh also tells whether the session survived the time offline,
/// and downloads made offline are reported.
async fn back_online(ui: Ui) {
    if LOGOUT_OWED.get() {
        LOGOUT_OWED.set(api::logout().await == Err(ApiError::Offline));
    } else {
        refresh(ui).await;
    }
}

thread_local! {
    /// Signed out offline: the server has not heard of it yet.
    static LOGOUT_OWED: Cell<bool> = const { Cell::new(false) };
}

/// Fetches the signed-in user and the document list, then syncs. Without a
/// network the local copies stay in use.
pub async fn refresh(ui: Ui) {
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
                    ui.notice.set(Some(Notice::SessionEnded(format!(
                        "{0} has changes on this device that are not sent yet, so nobody else can sign in here until {0} signs in again to send them, or signs out.",
                        previous.display_name
                    ))));
                    return;
                }
                forget_local().await;
            }
            ui.session_expired.set(false);
            persist::save_me(&answer);
            set_me(&me);
            ui.me.set(Some(me));
            match api::documents().await {
                Ok(docs) => {
                    persist::save_documents(&docs);
                    replicas::list(&docs);
                    ui.docs.set(docs);
                    replicas::bump();
                }
                Err(ApiError::SessionExpired) => ui.session_expired.set(true),
                Err(e) => ui.notice.set(Some(Notice::RefreshFailed(e.to_string()))),
            }
            sync::connect();
            download::send_owed().await;
        }
        Err(ApiError::SessionExpired) => {
            if ui.me.get_untracked().is_some() {
                ui.session_expired.set(true);
            }
        }
        // Offline, or no API: keep whatever is local.
        Err(_) => {
            if ui.me.get_untracked().is_some() {
                sync::connect();
            }
        }
    }
}

/// Signs out: ends the session and forgets this device's copies, changes
/// not sent yet included: callers ask first (the account page lists them
/// and offers to wait). The socket is closed first, so its closing is not
/// taken for an ended session.
pub async fn sign_out(ui: Ui) {
    ui.sign_out_when_sent.set(false);
    sync::disconnect();
    LOGOUT_OWED.set(api::logout().await == Err(ApiError::Offline));
    forget_local().await;
    ui.me.set(None);
    ui.docs.set(Vec::new());
    ui.session_expired.set(false);
    replicas::bump();
}

async fn forget_local() {
    download::forget();
    replicas::forget_all();
    persist::clear().await;
}
