//! The sync status shown on every page: network, connection, changes waiting
//! to be sent, last full sync, and a progress bar during catch-up; and what
//! needs attention (`Notice`), put into plain words here and nowhere else.

use crate::i18n::{Tr, t, tf, ts};
use leptos::prelude::*;

use crate::state::{Connection, Notice, Ui};
use crate::{Page, replicas};

/// A notice in the person's words.
fn words(notice: &Notice) -> String {
    match notice {
        Notice::SessionEnded(reason) => reason.clone(),
        Notice::Refused(refusals) => {
            refusals.iter().map(|r| r.words.as_str()).collect::<Vec<_>>().join(" ")
        }
        Notice::StorageFull => {
            t("This device could not store a change (storage full?). Stay online until it syncs.")
                .into()
        }
        Notice::RefreshFailed(e) => tf("Could not refresh the list of records: {0}", &[&e]),
        Notice::SyncError(e) => tf("Sync error: {0}", &[&e]),
        Notice::Unreadable(e) => {
            tf("Sync: the server sent something this app does not understand ({0}).", &[&e])
        }
    }
}

#[component]
pub fn SyncStatus() -> impl IntoView {
    let ui = expect_context::<Ui>();
    let line = move || {
        let progress = ui.progress.get();
        let n = progress.pending_changes;
        let changes = if n == 1 { ts("1 change") } else { tf("{0} changes", &[&n]) };
        let unreachable = ui.connection.get() == Connection::Unreachable;
        let mut parts = vec![match ui.connection.get() {
            Connection::Offline => ts("Offline: changes are kept on this device"),
            Connection::Unreachable if n > 0 => {
                if n == 1 {
                    tf("Can't reach the portal: {0} is safe on this device", &[&changes])
                } else {
                    tf("Can't reach the portal: {0} are safe on this device", &[&changes])
                }
            }
            Connection::Unreachable => {
                ts("Can't reach the portal: what is on this device stays readable")
            }
            Connection::Connecting if ui.me.with(Option::is_some) => ts("Online, connecting…"),
            Connection::Connecting | Connection::Online => ts("Online"),
        }];
        if n > 0 && !unreachable {
            parts.push(tf("{0} waiting to be sent", &[&changes]));
        }
        if ui.sign_out_when_sent.get() {
            parts.push(ts("you will be signed out once they are sent"));
        }
        if let Some(at) = ui.last_synced.get() {
            parts.push(tf("last synced {0}", &[&crate::when::moment(&at)]));
        }
        parts.join(" · ")
    };
    let catching_up = move || {
        let p = ui.progress.get();
        ui.connection.get() == Connection::Online && p.total > 0 && p.synced < p.total
    };
    view! {
        <div class="sync">
            <p class="sync-status" role="status" aria-live="polite" class:offline=move || !ui.online() || ui.connection.get() == Connection::Unreachable>{line}</p>
            <Show when=catching_up>
                {move || {
                    let p = ui.progress.get();
                    view! {
                        <label class="progress">
                            {tf("Syncing records: {0} of {1}", &[&p.synced, &p.total])}
                            <progress max=p.total value=p.synced></progress>
                        </label>
                    }
                }}
            </Show>
            <Show when=move || ui.undelivered.with(|u| !u.is_empty())>
                <div class="banner undelivered" role="alert">
                    <p>{Tr("Not delivered: your access to this record was taken away, so these changes were not sent. Copy anything you still need:")}</p>
                    <ul>{move || ui.undelivered.get().into_iter().map(|line| view! { <li>{line}</li> }).collect_view()}</ul>
                    <button type="button" class="secondary" on:click=move |_| replicas::dismiss_undelivered()>{Tr("Dismiss")}</button>
                </div>
            </Show>
        </div>
    }
}

/// The notice that needs attention, if any, until dismissed; a refusal
/// with a button to each item it names.
#[component]
pub fn NoticeBanner(page: RwSignal<Page>) -> impl IntoView {
    let ui = expect_context::<Ui>();
    move || {
        ui.notice.get().map(|notice| {
            let items = match &notice {
                Notice::Refused(refusals) => refusals.clone(),
                _ => Vec::new(),
            };
            view! {
                <div class="banner" role="alert">
                    <p>{words(&notice)}</p>
                    {items.into_iter().map(|r| view! {
                        <button type="button" on:click=move |_| page.set(crate::item_page(ui, r.patient, r.collection))>
                            {tf("Open the {0}", &[&t(r.collection.label()).to_lowercase()])}
                        </button>
                    }).collect_view()}
                    <button type="button" class="secondary" on:click=move |_| ui.notice.set(None)>{Tr("Dismiss")}</button>
                </div>
            }
        })
    }
}
