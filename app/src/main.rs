//! The portal's web app. Architecture invariant: only this crate touches
//! web-sys and browser storage.

mod status;

use leptos::prelude::*;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}

#[component]
fn App() -> impl IntoView {
    view! {
        <header class="topbar">
            <h1>"Patient portal"</h1>
            <status::SyncStatus/>
        </header>
        <main id="main">
            <section class="card">
                <h2>"Your health record, with you offline"</h2>
                <p>
                    "Results, prescriptions and messages from every clinic you visit, "
                    "readable and writable without a network."
                </p>
            </section>
        </main>
    }
}
