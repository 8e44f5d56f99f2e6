//! What a person is typing, kept outside the views. A view is built again
//! whenever a replica changes (every sync), and a half-typed message, note
//! or reason must survive that, and a move to another page and back: each
//! field reads its text from here when built and writes every keystroke
//! back. Kept in memory only, and forgotten on sign-out with everything
//! else of the person's.

use std::cell::RefCell;

use leptos::prelude::*;

thread_local! {
    /// (key, text, written: words a person wrote rather than a choice):
    /// a handful at most, so a list (a map's code costs more).
    static DRAFTS: RefCell<Vec<(String, String, bool)>> = const { RefCell::new(Vec::new()) };
}

/// The text of one field, named by a key stable across rebuilds (the
/// field's id: the document or entry it writes to).
#[derive(Clone, Copy)]
pub struct Draft {
    text: RwSignal<String>,
    key: StoredValue<String>,
    written: bool,
}

impl Draft {
    /// A field a person writes in: what is in it and not sent is named
    /// before sign-out (`typed`).
    pub fn new(key: String) -> Self {
        Self::kept(key, true)
    }

    /// A choice (a clinic, a time): kept, but nothing to name.
    pub fn choice(key: String) -> Self {
        Self::kept(key, false)
    }

    fn kept(key: String, written: bool) -> Self {
        let text = DRAFTS
            .with_borrow(|d| d.iter().find(|e| e.0 == key).map(|e| e.1.clone()))
            .unwrap_or_default();
        Self { text: RwSignal::new(text), key: StoredValue::new(key), written }
    }

    pub fn get(self) -> String {
        self.text.get()
    }

    pub fn get_untracked(self) -> String {
        self.text.get_untracked()
    }

    /// What the person typed: shown, and kept for the next build.
    pub fn set(self, text: String) {
        self.key.with_value(|key| {
            DRAFTS.with_borrow_mut(|d| {
                d.retain(|e| e.0 != *key);
                if !text.is_empty() {
                    d.push((key.clone(), text.clone(), self.written));
                }
            })
        });
        self.text.set(text);
    }

    /// Sent or saved: nothing left to keep.
    pub fn clear(self) {
        self.set(String::new());
    }
}

/// What the person wrote in a field and has not sent: signing out
/// names it before it is gone.
pub fn typed() -> Vec<String> {
    DRAFTS.with_borrow(|d| {
        d.iter().filter(|e| e.2 && !e.1.trim().is_empty()).map(|e| e.1.clone()).collect()
    })
}

/// Forgets every draft (sign-out: the next person must not see them).
pub fn forget_all() {
    DRAFTS.with_borrow_mut(Vec::clear);
}

/// Moves the keyboard focus to the element `id` once the view shows it
/// (a form just opened, or the button that opens it again).
pub fn focus_soon(id: String) {
    request_animation_frame(move || {
        if let Some(el) = document().get_element_by_id(&id) {
            use wasm_bindgen::JsCast;
            let _ = el.unchecked_into::<web_sys::HtmlElement>().focus();
        }
    });
}
