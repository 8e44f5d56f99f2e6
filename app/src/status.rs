//! The sync status shown on every page.

use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;

/// Online or offline, from the browser's own view of the network.
#[component]
pub fn SyncStatus() -> impl IntoView {
    let online = RwSignal::new(navigator_online());
    for (event, value) in [("online", true), ("offline", false)] {
        let callback = Closure::<dyn Fn()>::new(move || online.set(value));
        window()
            .add_event_listener_with_callback(event, callback.as_ref().unchecked_ref())
            .expect("event listener");
        // The listener lives as long as the page.
        callback.forget();
    }
    view! {
        <p class="sync-status" role="status" aria-live="polite">
            {move || if online.get() { "Online" } else { "Offline: changes are kept on this device" }}
        </p>
    }
}

fn navigator_online() -> bool {
    window().navigator().on_line()
}
