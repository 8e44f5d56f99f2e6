//! A map kept as a vector sorted by key: the records' collections of
//! entries, and the app's small maps (a device's documents, a page's
//! groups). It iterates in key order like a `BTreeMap`, but compiles to far
//! less per key and value type: a `BTreeMap`'s node splits, merges, removals
//! and iterators were 3 to 6 KB of WASM for each map type. Entries hydrated
//! from Automerge come in key order (it lists map keys sorted), so building
//! one is a push each. Inserting out of order and removing move the tail of
//! the vector, which for the few thousand entries or documents a device
//! keeps is a memmove. No I/O here.

use std::borrow::Borrow;

use autosurgeon::reconcile::{LoadKey, MapReconciler};
use autosurgeon::{Reconcile, Reconciler};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VecMap<K, V>(Vec<(K, V)>);

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<K: Ord, V> VecMap<K, V> {
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    fn find<Q: Ord + ?Sized>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
    {
        self.0.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    pub fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| &self.0[i].1)
    }

    pub fn get_mut<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| &mut self.0[i].1)
    }

    /// Inserts or replaces the value at `key`. A key greater than every
    /// other (as when hydrating, in key order) is a push.
    pub fn insert(&mut self, key: K, value: V) {
        if self.0.last().is_none_or(|(last, _)| *last < key) {
            self.0.push((key, value));
            return;
        }
        match self.find(&key) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (key, value)),
        }
    }

    /// The value at `key`, inserted by `make` first if there is none.
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.find(&key) {
            Ok(i) => i,
            Err(i) => {
                self.0.insert(i, (key, make()));
                i
            }
        };
        &mut self.0[i].1
    }

    pub fn contains_key<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.find(key).is_ok()
    }

    pub fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| self.0.remove(i).1)
    }
}

impl<K, V> VecMap<K, V> {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> + ExactSizeIterator {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn iter_mut(
        &mut self,
    ) -> impl DoubleEndedIterator<Item = (&K, &mut V)> + ExactSizeIterator {
        self.0.iter_mut().map(|(k, v)| (&*k, v))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + ExactSizeIterator {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator {
        self.0.iter().map(|(_, v)| v)
    }

    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut V> + ExactSizeIterator {
        self.0.iter_mut().map(|(_, v)| v)
    }

    pub fn into_values(self) -> impl DoubleEndedIterator<Item = V> + ExactSizeIterator {
        self.0.into_iter().map(|(_, v)| v)
    }
}

impl<'a, K, V> IntoIterator for &'a VecMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (K, V)>, fn(&'a (K, V)) -> (&'a K, &'a V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl<K, V> IntoIterator for VecMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<K: Ord, V> FromIterator<(K, V)> for VecMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(items: I) -> Self {
        let mut map = Self::new();
        for (k, v) in items {
            map.insert(k, v);
        }
        map
    }
}

impl<K: Ord, V, const N: usize> From<[(K, V); N]> for VecMap<K, V> {
    fn from(items: [(K, V); N]) -> Self {
        items.into_iter().collect()
    }
}

impl<K: Ord + Borrow<Q>, Q: Ord + ?Sized, V> std::ops::Index<&Q> for VecMap<K, V> {
    type Output = V;

    /// Panics if there is no entry at `key`, like a `BTreeMap`.
    fn index(&self, key: &Q) -> &V {
        self.get(key).expect("no entry found for key")
    }
}

/// As autosurgeon reconciles a `BTreeMap`: puts every entry, deletes the
/// keys the map no longer has.
impl<K: AsRef<str>, V: Reconcile> Reconcile for VecMap<K, V> {
    type Key<'a> = autosurgeon::reconcile::NoKey;

    fn reconcile<R: Reconciler>(&self, mut reconciler: R) -> Result<(), R::Error> {
        let mut m = reconciler.map()?;
        let old: Vec<String> = m.entries().map(|(k, _)| k.to_string()).collect();
        for (k, val) in self {
            if let LoadKey::Found(new_key) = val.key()
                && let LoadKey::Found(existing) = m.hydrate_entry_key::<V, _>(k)?
                && existing != new_key
            {
                m.replace(k, val)?;
                continue;
            }
            m.put(k.as_ref(), val)?;
        }
        for k in old {
            if !self.0.iter().any(|(key, _)| key.as_ref() == k) {
                m.delete(&k)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::VecMap;

    #[test]
    fn behaves_like_a_sorted_map() {
        let mut map = VecMap::new();
        let mut reference = std::collections::BTreeMap::new();
        for (i, key) in [5, 1, 9, 1, 3, 7, 5, 0, 10, 11].into_iter().enumerate() {
            map.insert(key, i);
            reference.insert(key, i);
        }
        assert_eq!(map.remove(&3), reference.remove(&3));
        assert_eq!(map.remove(&4), reference.remove(&4));
        assert_eq!(map.get(&9), reference.get(&9));
        assert_eq!(map[&9], reference[&9]);
        assert_eq!(map.get(&2), None);
        assert_eq!(map.len(), reference.len());
        let items: Vec<_> = map.iter().map(|(k, v)| (*k, *v)).collect();
        let expected: Vec<_> = reference.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(items, expected);
        assert!(map.keys().copied().eq(reference.keys().copied()));
        assert!(map.values().copied().eq(reference.values().copied()));
    }

    #[test]
    fn string_keys_are_looked_up_by_str() {
        let map: VecMap<String, u8> =
            [("b".to_owned(), 2), ("a".to_owned(), 1)].into_iter().collect();
        assert_eq!(map.get("a"), Some(&1));
        assert_eq!(map.get(&"b".to_owned()), Some(&2));
        assert!(map.contains_key("b") && !map.contains_key("c"));
        assert!(map.keys().map(String::as_str).eq(["a", "b"]));
    }
}
