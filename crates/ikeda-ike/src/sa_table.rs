//! The table of an engine's IKE SAs (IKEv2) or phase-1 SAs (IKEv1), and
//! the typed handle that names a place in it.
//!
//! An SA keeps its place while others come and go, so a handler can hold
//! an [`SaId`] across calls that add or remove other SAs; a place freed by
//! one SA is reused by the next. The handle is typed so that it is never
//! taken for a connection ([`crate::ConnId`]), a selector pair's number or
//! a CHILD SA's position. Outside the engine an SA is named by its SPIs.

/// The place of an SA in an engine's [`SaTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SaId(usize);

/// The SAs of one engine, each at a stable [`SaId`].
#[derive(Debug)]
pub struct SaTable<T> {
    places: Vec<Option<T>>,
}

impl<T> Default for SaTable<T> {
    fn default() -> Self {
        SaTable { places: Vec::new() }
    }
}

impl<T> SaTable<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts `sa` into the first free place and returns that place.
    pub fn insert(&mut self, sa: T) -> SaId {
        match self.places.iter().position(Option::is_none) {
            Some(i) => {
                self.places[i] = Some(sa);
                SaId(i)
            }
            None => {
                self.places.push(Some(sa));
                SaId(self.places.len() - 1)
            }
        }
    }

    pub fn get(&self, id: SaId) -> Option<&T> {
        self.places.get(id.0)?.as_ref()
    }

    pub fn get_mut(&mut self, id: SaId) -> Option<&mut T> {
        self.places.get_mut(id.0)?.as_mut()
    }

    /// Whether an SA lives at `id`.
    pub fn contains(&self, id: SaId) -> bool {
        self.get(id).is_some()
    }

    /// Removes the SA at `id` and frees its place.
    pub fn take(&mut self, id: SaId) -> Option<T> {
        self.places.get_mut(id.0)?.take()
    }

    /// Every place the table has had, live or free, in order. It borrows
    /// nothing, so a loop over it may add and remove SAs; a place added
    /// during the loop is not visited, and a freed one is seen as empty.
    pub fn ids(&self) -> impl Iterator<Item = SaId> {
        (0..self.places.len()).map(SaId)
    }

    /// The live SAs with their places, in order of place.
    pub fn entries(&self) -> impl Iterator<Item = (SaId, &T)> {
        self.places.iter().enumerate().filter_map(|(i, s)| Some((SaId(i), s.as_ref()?)))
    }

    /// The live SAs, in order of place.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.places.iter().flatten()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.places.iter_mut().flatten()
    }

    /// The first live SA for which `pred` holds.
    pub fn find(&self, mut pred: impl FnMut(&T) -> bool) -> Option<SaId> {
        self.entries().find(|(_, s)| pred(s)).map(|(id, _)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_stable_and_reused_and_a_freed_place_is_empty() {
        let mut t = SaTable::new();
        let a = t.insert("a");
        let b = t.insert("b");
        let c = t.insert("c");
        assert_eq!(t.take(b), Some("b"));
        assert_eq!(t.take(b), None);
        assert!(!t.contains(b));
        assert_eq!((t.get(a), t.get(c)), (Some(&"a"), Some(&"c")));
        assert_eq!(t.iter().copied().collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(t.find(|s| *s == "c"), Some(c));
        // The freed place is the next one used; the others keep theirs.
        assert_eq!(t.insert("d"), b);
        assert_eq!(t.entries().map(|(id, s)| (id, *s)).collect::<Vec<_>>(), [(a, "a"), (b, "d"), (c, "c")]);
        assert_eq!(t.ids().collect::<Vec<_>>(), [a, b, c]);
        *t.get_mut(a).unwrap() = "e";
        assert_eq!(t.get(a), Some(&"e"));
    }
}
