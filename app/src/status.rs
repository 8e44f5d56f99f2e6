//! The sync status shown on every page: network, connection, changes waiting
//! to be sent, last full sync, and a progress bar during catch-up; and what
//! needs attention (`Notice`), put into plain words here and nowhere else.

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
            "This device could not store a change (storage full?). Stay online until it syncs."
                .into()
        }
        Notice::RefreshFailed(e) => format!("Could not refresh the list of records: {e}"),
        Notice::SyncError(e) => format!("Sync error: {e}"),
        Notice::Unreadable(e) => {
            format!("Sync: the server sent something this app does not understand ({e}).")
        }
    }
}

#[component]
pub fn SyncStatus() -> impl IntoView {
    let ui = expect_context::<Ui>();
    let line = move || {
        let progress = ui.progress.get();
        let n = progress.pending_changes;
        let changes = format!("{n} change{}", if n == 1 { "" } else { "s" });
        let unreachable = ui.connection.get() == Connection::Unreachable;
        let mut parts = vec![match ui.connection.get() {
            Connection::Offline => "Offline: changes are kept on this device".to_owned(),
            Connection::Unreachable if n > 0 => {
                let are = if n == 1 { "is" } else { "are" };
                format!("Can't reach the portal: {changes} {are} safe on this device")
            }
            Connection::Unreachable => {
                "Can't reach the portal: what is on this device stays readable".to_owned()
            }
            Connection::Connecting if ui.me.with(Option::is_some) => {
                "Online, connecting…".to_owned()
            }
            Connection::Connecting | Connection::Online => "Online".to_owned(),
        }];
        if n > 0 && !unreachable {
            parts.push(format!("{changes} waiting to be sent"));
        }
        if ui.sign_out_when_sent.get() {
            parts.push("you will be signed out once they are sent".to_owned());
        }
        if let Some(at) = ui.last_synced.get() {
            parts.push(format!("last synced {}", crate::when::moment(&at)));
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
                            {format!("Syncing records: {} of {}", p.synced, p.total)}
                            <progress max=p.total value=p.synced></progress>
                        </label>
                    }
                }}
            </Show>
            <Show when=move || ui.undelivered.with(|u| !u.is_empty())>
                <div class="banner undelivered" role="alert">
                    <p>"Not delivered: your access to this record was taken away, so these changes were not sent. Copy anything you still need:"</p>
                    <ul>{move || ui.undelivered.get().into_iter().map(|line| view! { <li>{line}</li> }).collect_view()}</ul>
                    <button type="button" class="secondary" on:click=move |_| replicas::dismiss_undelivered()>"Dismiss"</button>
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
                            {format!("Open the {}", r.collection.label().to_ascii_lowercase())}
                        </button>
                    }).collect_view()}
                    <button type="button" class="secondary" on:click=move |_| ui.notice.set(None)>"Dismiss"</button>
                </div>
            }
        })
    }
}
