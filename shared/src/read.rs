//! Typed reads of a document: autosurgeon hydration through a view that
//! reads each map whole, once.
//!
//! Hydrating an entry with autosurgeon looks its fields up one by one, and
//! each Automerge `get` seeks through the document's op columns. The policy
//! hydrates every new entry a sync brings, so the server spent more time
//! there than applying the changes. Reading a map with one `map_range` and
//! answering `get` from that is about ten times cheaper. The policy and the
//! app both read through here, so what the server accepts is exactly what the
//! app shows, and the WASM bundle holds one copy of each entry's hydration.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::RangeBounds;

use automerge::iter::{ListRange, MapRange};
use automerge::{Automerge, AutomergeError, ChangeHash, ObjId, ObjType, Parents, Prop, Value};
use autosurgeon::{Hydrate, HydrateError, ReadDoc};
// autosurgeon reads through its own trait; Automerge's has the same names.
use automerge::ReadDoc as Read;

/// Current values of maps, by object and key.
pub(crate) type Maps = HashMap<ObjId, HashMap<String, (Value<'static>, ObjId)>>;

pub struct MapCache<'a> {
    doc: &'a Automerge,
    maps: RefCell<Maps>,
    /// Whole maps known without reading the document (`policy::ops`:
    /// those a batch of changes made, as its operations wrote them).
    #[cfg(feature = "new-maps")]
    known: Option<&'a Maps>,
}

impl<'a> MapCache<'a> {
    pub fn new(doc: &'a Automerge) -> Self {
        Self {
            doc,
            maps: RefCell::default(),
            #[cfg(feature = "new-maps")]
            known: None,
        }
    }

    /// Answers from `known` for the maps it holds; each must be exactly
    /// what `doc` shows for that object.
    #[cfg(feature = "new-maps")]
    pub(crate) fn with_known(doc: &'a Automerge, known: &'a Maps) -> Self {
        Self { doc, maps: RefCell::default(), known: Some(known) }
    }

    fn cached_get(&self, obj: &ObjId, key: &str) -> Option<(Value<'static>, ObjId)> {
        #[cfg(feature = "new-maps")]
        if let Some(map) = self.known.and_then(|known| known.get(obj)) {
            return map.get(key).cloned();
        }
        let mut maps = self.maps.borrow_mut();
        let map = maps.entry(obj.clone()).or_insert_with(|| {
            Read::map_range(self.doc, obj, ..)
                .map(|item| {
                    let id = item.id();
                    (item.key.into_owned(), (Value::from(item.value), id))
                })
                .collect()
        });
        map.get(key).cloned()
    }
}

impl ReadDoc for MapCache<'_> {
    type Parents<'b>
        = Parents<'b>
    where
        Self: 'b;

    fn get<P: Into<Prop>>(
        &self,
        obj: &ObjId,
        prop: P,
    ) -> Result<Option<(Value<'_>, ObjId)>, AutomergeError> {
        match prop.into() {
            // A key of a list or text has no value either way, and the
            // schema holds no lists, so map keys are all there is to cache.
            Prop::Map(key) => Ok(self.cached_get(obj, &key)),
            prop => Read::get(self.doc, obj, prop),
        }
    }

    fn get_heads(&self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }
    fn object_type<O: AsRef<ObjId>>(&self, obj: O) -> Option<ObjType> {
        Read::object_type(self.doc, obj).ok()
    }
    fn map_range<'b, O: AsRef<ObjId>, R: RangeBounds<String> + 'b>(
        &'b self,
        obj: O,
        range: R,
    ) -> MapRange<'b> {
        Read::map_range(self.doc, obj, range)
    }
    fn list_range<O: AsRef<ObjId>, R: RangeBounds<usize>>(
        &self,
        obj: O,
        range: R,
    ) -> ListRange<'_> {
        Read::list_range(self.doc, obj, range)
    }
    fn length<O: AsRef<ObjId>>(&self, obj: O) -> usize {
        Read::length(self.doc, obj)
    }
    fn text<O: AsRef<ObjId>>(&self, obj: O) -> Result<String, AutomergeError> {
        Read::text(self.doc, obj)
    }
    fn parents<O: AsRef<ObjId>>(&self, obj: O) -> Result<Parents<'_>, AutomergeError> {
        Read::parents(self.doc, obj)
    }
    fn is_empty(&self) -> bool {
        Read::keys(self.doc, automerge::ROOT).next().is_none()
    }
}

/// Hydrates a whole document.
pub fn hydrate<T: Hydrate>(doc: &Automerge) -> Result<T, HydrateError> {
    autosurgeon::hydrate(&MapCache::new(doc))
}

/// Hydrates a collection of entries at the document's root, the way the
/// schema's documents hydrate theirs (`schema::hydrate_entries`: a push per
/// entry onto a sorted vector, with no sort and no `BTreeMap` code per entry
/// type in the WASM bundle).
pub fn hydrate_root_prop<T: Hydrate>(
    doc: &Automerge,
    key: &str,
) -> Result<crate::vec_map::VecMap<String, T>, HydrateError> {
    crate::schema::hydrate_entries(&MapCache::new(doc), &automerge::ROOT, key.into())
}
