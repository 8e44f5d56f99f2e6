//! The sync connection: one WebSocket to `/sync` carrying automerge-repo
//! CBOR frames (one `WireMessage` per binary message), driving
//! `shared::sync::SyncClient`. Reconnects with backoff, and at once when the
//! browser comes back online; every changed document is written to
//! IndexedDB.

use std::cell::RefCell;

use js_sys::{ArrayBuffer, Uint8Array};
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::sync::{CLOSE_SESSION_ENDED, WireMessage, decode_doc_id};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{BinaryType, MessageEvent, WebSocket};

use crate::api::{self, ApiError};
use crate::store::{self, ui, with_core_mut};

struct Connection {
    socket: WebSocket,
    opened: bool,
    _handlers: Vec<Closure<dyn FnMut(JsValue)>>,
}

thread_local! {
    static CONN: RefCell<Option<Connection>> = const { RefCell::new(None) };
    static RETRY: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    static TIMER: std::cell::Cell<Option<i32>> = const { std::cell::Cell::new(None) };
}

fn url() -> Option<String> {
    let location = web_sys::window()?.location();
    let scheme = if location.protocol().ok()? == "https:" { "wss" } else { "ws" };
    Some(format!("{scheme}://{}/sync", location.host().ok()?))
}

/// Listens to the browser's online/offline events (once, at start).
pub fn watch_network() {
    let window = web_sys::window().expect("window");
    let online = Closure::<dyn Fn()>::new(|| {
        ui().online.set(true);
        RETRY.set(0);
        spawn_local(async {
            // Also tells us whether the session survived the time offline.
            store::refresh().await;
        });
    });
    let offline = Closure::<dyn Fn()>::new(|| {
        ui().online.set(false);
        disconnect();
    });
    let _ = window.add_event_listener_with_callback("online", online.as_ref().unchecked_ref());
    let _ = window.add_event_listener_with_callback("offline", offline.as_ref().unchecked_ref());
    // They live as long as the page.
    online.forget();
    offline.forget();
}

/// Opens the connection unless it is open, the device is offline, nobody is
/// signed in or the session has expired.
pub fn connect() {
    let ui = ui();
    if ui.session_expired.get_untracked() || ui.me.get_untracked().is_none() {
        return;
    }
    if CONN.with_borrow(Option::is_some) {
        return;
    }
    if let Some(timer) = TIMER.take()
        && let Some(w) = web_sys::window()
    {
        w.clear_timeout_with_handle(timer);
    }
    let Some(url) = url() else { return };
    let Ok(socket) = WebSocket::new(&url) else {
        schedule_reconnect();
        return;
    };
    socket.set_binary_type(BinaryType::Arraybuffer);

    let on_open = Closure::<dyn FnMut(JsValue)>::new(move |_| {
        let join = with_core_mut(|c| c.client.connect());
        CONN.with_borrow_mut(|conn| {
            if let Some(conn) = conn {
                conn.opened = true;
            }
        });
        RETRY.set(0);
        send(&[join]);
        ui.connected.set(true);
        ui.banner.update(|b| {
            if b.as_deref().is_some_and(|t| t.starts_with("Sync")) {
                *b = None;
            }
        });
    });
    let on_message = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
        let event: MessageEvent = event.unchecked_into();
        if let Ok(buffer) = event.data().dyn_into::<ArrayBuffer>() {
            receive(&Uint8Array::new(&buffer).to_vec());
        }
    });
    let on_close = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
        let event: web_sys::CloseEvent = event.unchecked_into();
        let opened = CONN.with_borrow_mut(|conn| conn.take().map(|c| c.opened)).unwrap_or(false);
        ui.connected.set(false);
        if event.code() == CLOSE_SESSION_ENDED {
            // Signed out elsewhere, passkey removed, access taken away: the
            // server says why; reconnecting would not help.
            ui.session_expired.set(true);
            ui.banner.set(Some(event.reason()));
        } else if !opened {
            // The handshake failed: a sign-in that expired, or a server that
            // is down. Ask the API which.
            spawn_local(async {
                if let Err(ApiError::SessionExpired) = api::me().await {
                    store::ui().session_expired.set(true);
                } else {
                    schedule_reconnect();
                }
            });
        } else {
            schedule_reconnect();
        }
    });
    socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    CONN.set(Some(Connection {
        socket,
        opened: false,
        _handlers: vec![on_open, on_message, on_close],
    }));
}

/// Closes the connection (offline, or signing out); no reconnect follows.
pub fn disconnect() {
    if let Some(conn) = CONN.take() {
        conn.socket.set_onclose(None);
        let _ = conn.socket.close();
    }
    if let Some(timer) = TIMER.take()
        && let Some(w) = web_sys::window()
    {
        w.clear_timeout_with_handle(timer);
    }
    ui().connected.set(false);
}

fn schedule_reconnect() {
    let ui = ui();
    if !ui.online.get_untracked()
        || ui.session_expired.get_untracked()
        || ui.me.get_untracked().is_none()
    {
        return;
    }
    let attempt = RETRY.get();
    RETRY.set(attempt.saturating_add(1));
    let jitter = js_sys::Math::random() * 500.0;
    let delay = (1000.0 * 2f64.powi(attempt.min(5) as i32)).min(30_000.0) + jitter;
    let callback = Closure::once_into_js(|| {
        TIMER.set(None);
        connect();
    });
    if let Some(w) = web_sys::window()
        && let Ok(handle) = w.set_timeout_with_callback_and_timeout_and_arguments_0(
            callback.unchecked_ref(),
            delay as i32,
        )
    {
        TIMER.set(Some(handle));
    }
}

fn send(messages: &[WireMessage]) {
    CONN.with_borrow(|conn| {
        let Some(conn) = conn.as_ref().filter(|c| c.opened) else { return };
        for message in messages {
            let _ = conn.socket.send_with_u8_array(&message.encode());
        }
    });
}

/// Sends whatever local changes the server has not seen (after an edit).
pub fn flush() {
    let outgoing = with_core_mut(|c| c.client.outgoing());
    send(&outgoing);
}

fn receive(frame: &[u8]) {
    let ui = ui();
    let message = match WireMessage::decode(frame) {
        Ok(message) => message,
        Err(e) => {
            ui.banner.set(Some(format!(
                "Sync: the server sent something this app does not understand ({e})."
            )));
            return;
        }
    };
    // Refused because the patient withdrew consent: never deliverable, so
    // the record leaves this device and what was not delivered is listed.
    if let WireMessage::ChangeRejected { document_id, rule, .. } = &message
        && let (Ok(id), "consent") = (decode_doc_id(document_id), rule.as_str())
    {
        store::undeliverable(id);
        return;
    }
    let result = with_core_mut(|core| core.client.receive(message));
    let received = match result {
        Ok(received) => received,
        Err(e) => {
            ui.banner.set(Some(format!("Sync error: {e}")));
            return;
        }
    };
    send(&received.outgoing);
    // Documents the server does not have yet: start them from their
    // deterministic genesis so this device can write the first entry.
    let mut fresh = Vec::new();
    with_core_mut(|core| {
        for id in &received.unavailable {
            let Some(kind) = core.kinds.get(id).copied() else { continue };
            if core.client.doc(*id).is_some_and(|d| d.get_heads().is_empty()) {
                core.client.insert(*id, kind.genesis());
                fresh.push(*id);
            }
        }
    });
    if !fresh.is_empty() {
        store::reset_actors(&fresh);
        flush();
    }
    if !received.rejected.is_empty() {
        store::reset_actors(&received.rejected.iter().map(|r| r.0).collect::<Vec<_>>());
        let messages: Vec<String> = received.rejected.iter().map(|(_, m)| m.clone()).collect();
        ui.banner.set(Some(format!(
            "The server refused a change, so it was undone on this device and the record is being reloaded: {}",
            messages.join("; ")
        )));
    }
    for id in received.changed.iter().chain(&fresh) {
        store::persist(*id);
    }
    store::note_confirmed();
    let progress = store::progress();
    if progress.total > 0 && progress.synced == progress.total && progress.pending_changes == 0 {
        store::record_synced();
    }
    store::bump();
}
