//! The words the app shows, in the person's language. English is the
//! source: the code says `t("Messages")`, and for a sentence with values
//! `tf("Message sent to {0}", &[&who])` (numbered, so a translation may put
//! them in another order). English needs no catalog, so it costs the bundle
//! nothing.
//!
//! A view's text child is `Tr("Messages")`, translated when the view is
//! built: in WASM a call that returns a `&str` goes through memory, and
//! `Tr` keeps that out of each call site (about 1.2 KB of the bundle);
//! `ts` is `t` into a `String`, for the same reason.
//!
//! Another language is one file, `app/i18n/<lang>.json` (English text to
//! its translation). scripts/i18n-pack.mjs turns it into a pack,
//! `/i18n/<lang>.txt`, keyed by `hash` of the English, so the English is not
//! shipped twice: a first line of the keys' differences in hex, in key
//! order, then one translation per line in the same order (about 7.6 KB
//! brotli for Spanish; the keys alone as 8 hex digits on each line cost
//! 1.5 KB more). A lookup is a binary search. The pack is not in the
//! WASM nor in the service worker's cache: it is fetched when a person picks
//! the language (account page) and kept in localStorage, read before the
//! first render, so it is there offline and at every start. The language is
//! a device setting, not part of anyone's record: it stays across sign-out.
//!
//! `cargo test -p app` checks that every text the code marks has its
//! translation, with the same placeholders, and that no translation is
//! left over.

use std::cell::RefCell;
use std::fmt::{Display, Write};

use leptos::tachys::hydration::Cursor;
use leptos::tachys::view::{Position, PositionState, Render, RenderHtml};

thread_local! {
    /// The pack in use, sorted by hash; empty for English. Kept for the
    /// page's life (`&'static`): a switch rebuilds the views over a new one
    /// (and leaves the old one, a few KB, behind).
    static PACK: RefCell<Vec<(u32, &'static str)>> = const { RefCell::new(Vec::new()) };
}

/// The languages a person can pick: code and name, each in its own language.
pub const LANGUAGES: [(&str, &str); 2] = [("en", "English"), ("es", "Español")];

/// Marks an English text kept in a constant to be translated where it is
/// shown (`t(CONSTANT)`): what `n` marks is in the catalog too.
pub const fn n(english: &'static str) -> &'static str {
    english
}

/// The text in the person's language (the English when the pack lacks it).
#[inline(never)]
pub fn t(english: &'static str) -> &'static str {
    PACK.with_borrow(|pack| {
        if pack.is_empty() {
            return english;
        }
        let key = hash(english);
        pack.binary_search_by_key(&key, |e| e.0).map_or(english, |i| pack[i].1)
    })
}

/// `t`, as a `String`.
#[inline(never)]
pub fn ts(english: &'static str) -> String {
    t(english).to_owned()
}

/// A view's text, translated as the view is built (see the module's doc).
#[derive(Clone, Copy)]
pub struct Tr(pub &'static str);

impl Render for Tr {
    type State = <&'static str as Render>::State;

    fn build(self) -> Self::State {
        t(self.0).build()
    }

    fn rebuild(self, state: &mut Self::State) {
        t(self.0).rebuild(state)
    }
}

leptos::tachys::no_attrs!(Tr);

impl RenderHtml for Tr {
    type AsyncOutput = Self;
    type Owned = Self;

    const MIN_LENGTH: usize = 0;

    fn dry_resolve(&mut self) {}

    async fn resolve(self) -> Self {
        self
    }

    fn to_html_with_buf(
        self,
        buf: &mut String,
        position: &mut Position,
        escape: bool,
        mark_branches: bool,
        extra_attrs: Vec<leptos::tachys::html::attribute::any_attribute::AnyAttribute>,
    ) {
        t(self.0).to_html_with_buf(buf, position, escape, mark_branches, extra_attrs)
    }

    fn hydrate<const FROM_SERVER: bool>(
        self,
        cursor: &Cursor,
        position: &PositionState,
    ) -> Self::State {
        t(self.0).hydrate::<FROM_SERVER>(cursor, position)
    }

    fn into_owned(self) -> Self {
        self
    }
}

/// `t` of a text with numbered placeholders `{0}`..`{9}`, filled with `args`.
pub fn tf(english: &'static str, args: &[&dyn Display]) -> String {
    let mut rest = t(english);
    let mut out = String::with_capacity(rest.len() + 24);
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        match rest.as_bytes()[i + 1..] {
            [d @ b'0'..=b'9', b'}', ..] => {
                if let Some(arg) = args.get(usize::from(d - b'0')) {
                    let _ = write!(out, "{arg}");
                }
                rest = &rest[i + 3..];
            }
            _ => {
                out.push('{');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether numbers are written with a decimal comma ("6,6 %").
pub fn decimal_comma() -> bool {
    PACK.with_borrow(|pack| !pack.is_empty())
}

/// The pack's key of a text: the low 24 bits of its FNV-1a hash (over
/// UTF-8; scripts/i18n-pack.mjs computes the same). 24 bits keep the keys
/// small; the catalog test fails if two texts ever share one.
pub fn hash(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
        & 0xff_ffff
}

/// A pack's entries as (key, text), if it is one (a key for each line,
/// increasing): anything else, such as the app's page served for a
/// missing file, is not.
fn parse(pack: &str) -> Option<Vec<(u32, &str)>> {
    let (keys, texts) = pack.split_once('\n')?;
    let mut key = 0;
    let mut entries = Vec::new();
    let mut texts = texts.lines();
    for step in keys.split(' ') {
        let step = u32::from_str_radix(step, 16).ok().filter(|&s| s > 0 || entries.is_empty())?;
        key += step;
        entries.push((key, texts.next()?));
    }
    texts.next().is_none().then_some(entries)
}

/// Puts a pack in use; false if the text is not a pack.
fn install(pack: String) -> bool {
    let Some(entries) = parse(Box::leak(pack.into_boxed_str())) else { return false };
    PACK.set(entries);
    true
}

pub use web::*;

/// The browser's side: localStorage, the page's `lang`, fetching a pack.
mod web {
    use leptos::prelude::*;

    use super::{PACK, install, t};
    use crate::state::Ui;

    /// localStorage: the language picked, and each pack fetched. Plain: a
    /// setting and words, nothing about a person.
    const LANG: &str = "lang";

    fn pack_key(lang: &str) -> String {
        format!("lang-pack-{lang}")
    }

    fn storage() -> Option<web_sys::Storage> {
        web_sys::window()?.local_storage().ok()?
    }

    fn stored(key: &str) -> Option<String> {
        storage()?.get_item(key).ok()?
    }

    fn store(key: &str, value: &str) {
        if let Some(s) = storage() {
            let _ = s.set_item(key, value);
        }
    }

    fn mark_page(lang: &str) {
        if let Some(root) = document().document_element() {
            let _ = root.set_attribute("lang", lang);
        }
    }

    /// Reads the language picked on this device, and its pack, before the
    /// first render; the page's `lang` follows (dates are formatted by it).
    /// Returns the language in use.
    pub fn start() -> &'static str {
        let lang = stored(LANG)
            .and_then(|lang| super::LANGUAGES.iter().find(|l| l.0 == lang && l.0 != "en"))
            .filter(|l| stored(&pack_key(l.0)).is_some_and(install))
            .map_or("en", |l| l.0);
        mark_page(lang);
        lang
    }

    /// A language's pack from the network, if it brings one.
    async fn fetch(lang: &str) -> Option<String> {
        crate::api::language_pack(lang).await.filter(|p| super::parse(p).is_some())
    }

    /// Switches to `lang`: English at once, another language once its pack
    /// is here (fetched, else the one kept from before); `App` then builds
    /// the views anew (what is being typed is in `drafts` and stays). Also
    /// at start, online, in a language other than English: a new release
    /// may bring new words, and only a changed pack is put in use.
    pub async fn choose(ui: Ui, lang: &'static str) -> Result<(), &'static str> {
        if lang != "en" {
            let kept = stored(&pack_key(lang));
            let fetched = fetch(lang).await;
            if fetched.is_some() && fetched == kept && ui.language.get_untracked() == lang {
                return Ok(());
            }
            if let Some(pack) = &fetched {
                store(&pack_key(lang), pack);
            }
            if !fetched.or(kept).is_some_and(install) {
                return Err(t(
                    "The first switch to another language needs the network: try again when you are online.",
                ));
            }
        } else {
            PACK.with_borrow_mut(Vec::clear);
        }
        store(LANG, lang);
        mark_page(lang);
        ui.language.set(lang);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    use super::*;

    #[test]
    fn placeholders_are_filled_in_any_order() {
        assert_eq!(tf("{0} of {1}", &[&3, &"five"]), "3 of five");
        assert_eq!(tf("{1}, {0}", &[&"a", &"b"]), "b, a");
        assert_eq!(tf("no {placeholder}", &[]), "no {placeholder}");
        assert_eq!(t("Messages"), "Messages");
    }

    #[test]
    fn a_pack_is_looked_up_by_the_hash_of_the_english() {
        let mut lines = [(hash("Messages"), "Mensajes"), (hash("{0} of {1}"), "{0} de {1}")];
        lines.sort();
        let pack = format!(
            "{:x} {:x}\n{}\n{}\n",
            lines[0].0,
            lines[1].0 - lines[0].0,
            lines[0].1,
            lines[1].1
        );
        assert!(install(pack));
        assert_eq!(t("Messages"), "Mensajes");
        assert_eq!(tf("{0} of {1}", &[&1, &2]), "1 de 2");
        assert_eq!(t("Results"), "Results");
        assert!(decimal_comma());
        assert!(!install("<!doctype html>".into()));
        PACK.with_borrow_mut(Vec::clear);
        // The value scripts/i18n-pack.mjs computes for the same text.
        assert_eq!(hash("Messages"), 0x61_1fd5);
        assert!(!install("1 1\nonly one\n".into()), "a key without its line");
    }

    /// The string literals marked `t(`, `tf(`, `ts(`, `Tr(` or `n(` in Rust code
    /// (comments left out).
    fn marked(src: &str) -> Vec<String> {
        let code: Vec<&str> = src.lines().filter(|l| !l.trim_start().starts_with("//")).collect();
        let code = code.join("\n");
        let b = code.as_bytes();
        let mut out = Vec::new();
        for (open, _) in code.match_indices('(') {
            let name = code[..open].trim_end_matches(|c: char| c.is_alphanumeric() || c == '_');
            if !matches!(&code[name.len()..open], "t" | "tf" | "ts" | "Tr" | "n")
                || name.ends_with('.')
            {
                continue;
            }
            let rest = &code[open + 1..];
            let mut j = open + 1 + rest.len() - rest.trim_start().len();
            if b.get(j) != Some(&b'"') {
                continue;
            }
            j += 1;
            let mut text = String::new();
            while b[j] != b'"' {
                if b[j] == b'\\' {
                    match b[j + 1] {
                        b'n' => text.push('\n'),
                        b'\n' => {
                            while b[j + 2].is_ascii_whitespace() {
                                j += 1;
                            }
                        }
                        c => text.push(char::from(c)),
                    }
                    j += 2;
                    continue;
                }
                let c = code[j..].chars().next().expect("inside the literal");
                text.push(c);
                j += c.len_utf8();
            }
            out.push(text);
        }
        out
    }

    fn sources() -> Vec<(String, String)> {
        let mut files = Vec::new();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        for dir in [root.clone(), root.join("replicas")] {
            for entry in std::fs::read_dir(dir).expect("app/src") {
                let path = entry.expect("a file").path();
                if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).expect("readable");
                    // Tests' texts are not shown to anyone.
                    let text =
                        text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default().to_owned();
                    files.push((path.display().to_string(), text));
                }
            }
        }
        files
    }

    /// Texts from `shared` the app shows through `t`: the lab catalog's
    /// words for people, entry kinds, the access log's actions, the write
    /// policy's explanations, and status codes.
    fn shared_texts() -> Vec<&'static str> {
        use shared::status::*;
        let mut texts: Vec<&str> = shared::catalog::FOR_PEOPLE
            .iter()
            .flat_map(|(_, name, about)| [*name, *about])
            .collect();
        texts.extend(shared::schema::Collection::ALL.iter().map(|c| c.label()));
        texts.extend(shared::api::AuditAction::ALL.iter().map(|a| a.label()));
        texts.extend(shared::policy::Rule::ALL.iter().map(|r| r.explanation()));
        texts.extend(shared::api::UserRole::ALL.iter().map(|r| r.code()));
        texts.extend(ResultStatus::ALL.iter().map(|s| s.code()));
        texts.extend(PrescriptionStatus::ALL.iter().map(|s| s.code()));
        texts.extend(AllergyStatus::ALL.iter().map(|s| s.code()));
        texts.extend(Severity::ALL.iter().map(|s| s.code()));
        texts.extend(ImmunizationStatus::ALL.iter().map(|s| s.code()));
        texts.extend(AppointmentStatus::ALL.iter().map(|s| s.code()));
        texts.extend(RefillStatus::ALL.iter().map(|s| s.code()));
        texts.extend(TaskStatus::ALL.iter().map(|s| s.code()));
        texts
    }

    fn placeholders(text: &str) -> BTreeSet<String> {
        (0..10).map(|d| format!("{{{d}}}")).filter(|p| text.contains(p)).collect()
    }

    #[test]
    fn every_text_shown_has_its_spanish_and_no_spanish_is_left_over() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("i18n/es.json");
        let catalog: BTreeMap<String, String> =
            serde_json::from_str(&std::fs::read_to_string(path).expect("app/i18n/es.json"))
                .expect("a JSON object of strings");
        let mut wanted: BTreeSet<String> =
            sources().iter().flat_map(|(_, src)| marked(src)).collect();
        wanted.extend(shared_texts().into_iter().map(str::to_owned));
        let missing: Vec<_> = wanted.iter().filter(|k| !catalog.contains_key(*k)).collect();
        assert!(missing.is_empty(), "no Spanish for {} texts: {missing:#?}", missing.len());
        let unused: Vec<_> = catalog.keys().filter(|k| !wanted.contains(*k)).collect();
        assert!(unused.is_empty(), "Spanish for texts the app no longer has: {unused:#?}");
        for (english, spanish) in &catalog {
            assert!(!spanish.trim().is_empty() && !spanish.contains('\n'), "{english:?}");
            assert_eq!(placeholders(english), placeholders(spanish), "placeholders of {english:?}");
        }
        let hashes: BTreeSet<u32> = catalog.keys().map(|k| hash(k)).collect();
        assert_eq!(hashes.len(), catalog.len(), "two texts share a hash");
    }

    /// A heuristic for texts not marked: a literal with a letter as a
    /// view's text (between tags) or as a label-like attribute.
    #[test]
    fn views_show_no_unmarked_english() {
        let mut found = Vec::new();
        for (file, src) in sources() {
            for pattern in [">\"", "aria-label=\"", "placeholder=\"", "title=\""] {
                for (i, _) in src.match_indices(pattern) {
                    let rest = &src[i + pattern.len()..];
                    let text = &rest[..rest.find('"').unwrap_or(0)];
                    // Markup written as text (the summary's) is not a view.
                    let markup = text.contains(['\n', '<', '>', '(', ')', '{', '}', ';']);
                    if !markup && text.chars().any(char::is_alphabetic) {
                        found.push(format!("{file}: {text}"));
                    }
                }
            }
        }
        assert!(found.is_empty(), "texts not marked for translation: {found:#?}");
    }
}
