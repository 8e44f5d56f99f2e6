//! The sync connection: one WebSocket to `/sync` carrying automerge-repo
//! CBOR frames (one `WireMessage` per binary message). Reconnects with
//! backoff, and at once when the browser comes back online.
//!
//! It only moves frames: what to send first and what to do with a frame
//! received are the functions in its `Link`, given by `session::start`
//! (the replicas'), so this module imports neither the replicas nor the
//! session (they import it: one way).

use std::cell::{Cell, RefCell};

use js_sys::{ArrayBuffer, Uint8Array};
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::sync::{CLOSE_SESSION_ENDED, WireMessage};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{BinaryType, MessageEvent, WebSocket};

use crate::api::{self, ApiError};
use crate::state::{Connection as Net, Notice, Ui};

/// What the socket serves.
#[derive(Clone, Copy)]
pub struct Link {
    pub ui: Ui,
    /// The first message on a new connection.
    pub join: fn() -> WireMessage,
    /// Each frame received.
    pub receive: fn(&[u8]),
    /// The browser is back online.
    pub online: fn(Ui),
    /// What the user may read may have changed: ask the server again.
    pub relist: fn(Ui),
}

struct Connection {
    socket: WebSocket,
    opened: bool,
    _handlers: Vec<Closure<dyn FnMut(JsValue)>>,
}

thread_local! {
    static LINK: Cell<Option<Link>> = const { Cell::new(None) };
    static CONN: RefCell<Option<Connection>> = const { RefCell::new(None) };
    static RETRY: Cell<u32> = const { Cell::new(0) };
    static TIMER: Cell<Option<i32>> = const { Cell::new(None) };
    static REFRESH_OWED: Cell<bool> = const { Cell::new(false) };
}

fn link() -> Link {
    LINK.get().expect("sync::init runs at start")
}

fn url() -> Option<String> {
    let location = web_sys::window()?.location();
    let scheme = if location.protocol().ok()? == "https:" { "wss" } else { "ws" };
    Some(format!("{scheme}://{}/sync", location.host().ok()?))
}

/// Takes the link and listens to the browser's online/offline events (once,
/// at start).
pub fn init(link: Link) {
    LINK.set(Some(link));
    let ui = link.ui;
    let window = web_sys::window().expect("window");
    let online = Closure::<dyn Fn()>::new(move || {
        ui.connection.set(Net::Connecting);
        RETRY.set(0);
        (link.online)(ui);
    });
    let offline = Closure::<dyn Fn()>::new(move || {
        ui.connection.set(Net::Offline);
        disconnect();
    });
    let _ = window.add_event_listener_with_callback("online", online.as_ref().unchecked_ref());
    let _ = window.add_event_listener_with_callback("offline", offline.as_ref().unchecked_ref());
    // They live as long as the page.
    online.forget();
    offline.forget();
}

/// Asks the server again who is signed in and what they may read (a
/// document became unavailable, the session ended).
pub fn relist() {
    let link = link();
    (link.relist)(link.ui);
}

/// The list of records could not be asked for (the network was back for
/// the browser but not yet for its requests, or the server failed): ask
/// again once the connection opens.
pub fn owe_refresh() {
    REFRESH_OWED.set(true);
}

/// The socket is closed: still online, but not connected.
fn closed(ui: Ui) {
    if ui.connection.get_untracked() == Net::Online {
        ui.connection.set(Net::Connecting);
    }
}

/// Opens the connection unless it is open, the device is offline, nobody is
/// signed in or the session has expired.
pub fn connect() {
    let link = link();
    let ui = link.ui;
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
        let join = (link.join)();
        CONN.with_borrow_mut(|conn| {
            if let Some(conn) = conn {
                conn.opened = true;
            }
        });
        RETRY.set(0);
        send(&[join]);
        ui.connection.set(Net::Online);
        if REFRESH_OWED.take() {
            (link.online)(ui);
        }
        if ui.notice.with_untracked(|n| n.as_ref().is_some_and(Notice::ends_on_reconnect)) {
            ui.notice.set(None);
        }
    });
    let on_message = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
        let event: MessageEvent = event.unchecked_into();
        if let Ok(buffer) = event.data().dyn_into::<ArrayBuffer>() {
            (link.receive)(&Uint8Array::new(&buffer).to_vec());
        }
    });
    let on_close = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
        let event: web_sys::CloseEvent = event.unchecked_into();
        let opened = CONN.with_borrow_mut(|conn| conn.take().map(|c| c.opened)).unwrap_or(false);
        closed(ui);
        if event.code() == CLOSE_SESSION_ENDED {
            // Signed out elsewhere, passkey removed, access taken away: the
            // server says why; reconnecting would not help.
            ui.session_expired.set(true);
            ui.notice.set(Some(Notice::SessionEnded(event.reason())));
            // If access was taken away, the copies must go too.
            (link.relist)(ui);
        } else if !opened {
            // The handshake failed: a sign-in that expired, access taken
            // away, or a server that is down. Ask the API which.
            spawn_local(async move {
                match api::me().await {
                    Err(ApiError::SessionExpired) => ui.session_expired.set(true),
                    Err(ApiError::AccessRemoved) => (link.relist)(ui),
                    _ => {
                        if ui.online_untracked() {
                            ui.connection.set(Net::Unreachable);
                        }
                        schedule_reconnect();
                    }
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
    closed(link().ui);
}

fn schedule_reconnect() {
    let ui = link().ui;
    if !ui.online_untracked()
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

/// Sends frames if the connection is open (otherwise the replicas send
/// them again once it is: sync states start afresh with every connection).
pub fn send(messages: &[WireMessage]) {
    CONN.with_borrow(|conn| {
        let Some(conn) = conn.as_ref().filter(|c| c.opened) else { return };
        for message in messages {
            let _ = conn.socket.send_with_u8_array(&message.encode());
        }
    });
}
