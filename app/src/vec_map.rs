//! A map kept as a vector sorted by key, for the app's small maps (a
//! device's documents, a page's groups). It iterates in key order like a
//! `BTreeMap`, but compiles to far less per key and value type: a
//! `BTreeMap`'s node splits, merges and removals were 3 to 6 KB of WASM for
//! each map type. Inserting and removing move the tail of the vector, which
//! for the few thousand documents a staff device keeps is a memmove.

#[derive(Clone)]
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

    fn find(&self, key: &K) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.cmp(key))
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.find(key).ok().map(|i| &self.0[i].1)
    }

    pub fn insert(&mut self, key: K, value: V) {
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

    pub fn contains_key(&self, key: &K) -> bool {
        self.find(key).is_ok()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.find(key).ok().map(|i| self.0.remove(i).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }

    pub fn into_values(self) -> impl Iterator<Item = V> {
        self.0.into_iter().map(|(_, v)| v)
    }
}

impl<'a, K: Ord, V> IntoIterator for &'a VecMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (K, V)>, fn(&'a (K, V)) -> (&'a K, &'a V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::VecMap;

    #[test]
    fn behaves_like_a_sorted_map() {
        let mut map = VecMap::new();
        let mut reference = std::collections::BTreeMap::new();
        for (i, key) in [5, 1, 9, 1, 3, 7, 5, 0].into_iter().enumerate() {
            map.insert(key, i);
            reference.insert(key, i);
        }
        assert_eq!(map.remove(&3), reference.remove(&3));
        assert_eq!(map.remove(&4), reference.remove(&4));
        assert_eq!(map.get(&9), reference.get(&9));
        assert_eq!(map.get(&2), None);
        let items: Vec<_> = map.iter().map(|(k, v)| (*k, *v)).collect();
        let expected: Vec<_> = reference.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(items, expected);
        assert!(map.keys().copied().eq(reference.keys().copied()));
    }
}
