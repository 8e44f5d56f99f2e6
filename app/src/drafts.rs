//! What a person is typing, kept outside the views. A view is built again
//! whenever a replica changes (every sync), and a half-typed message, note
//! or reason must survive that, and a move to another page and back: each
//! field reads its text from here when built and writes every keystroke
//! back. Kept in memory only, and forgotten on sign-out with everything
//! else of the person's.

use std::cell::RefCell;

use leptos::prelude::*;

thread_local! {
    /// (key, text): a handful at most, so a list (a map's code costs more).
    static DRAFTS: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
}

/// The text of one field, named by a key stable across rebuilds (the
/// field's id: the document or entry it writes to).
#[derive(Clone, Copy)]
pub struct Draft {
    text: RwSignal<String>,
    key: StoredValue<String>,
}

impl Draft {
    pub fn new(key: String) -> Self {
        let text = DRAFTS
            .with_borrow(|d| d.iter().find(|(k, _)| *k == key).map(|(_, t)| t.clone()))
            .unwrap_or_default();
        Self { text: RwSignal::new(text), key: StoredValue::new(key) }
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
                d.retain(|(k, _)| k != key);
                if !text.is_empty() {
                    d.push((key.clone(), text.clone()));
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
