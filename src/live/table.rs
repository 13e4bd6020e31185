//! The snapshot's per-target part: a place per inventory position, kept
//! in chunks that snapshots share. Publishing a batch copies the chunks it
//! changed and the list of chunk pointers (one pointer per 32 targets);
//! a reader looks a target up by its position and never copies.

use std::sync::Arc;

const CHUNK: usize = 32;

type Chunk<T> = [Option<Arc<T>>; CHUNK];

#[derive(Debug)]
pub(super) struct Table<T> {
    chunks: Vec<Arc<Chunk<T>>>,
    len: usize,
}

impl<T> Clone for Table<T> {
    fn clone(&self) -> Self {
        Table {
            chunks: self.chunks.clone(),
            len: self.len,
        }
    }
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Table<T> {
    /// `len` empty places (they share one empty chunk until written).
    pub(super) fn with_len(len: usize) -> Self {
        let empty: Arc<Chunk<T>> = Arc::new(std::array::from_fn(|_| None));
        Table {
            chunks: vec![empty; len.div_ceil(CHUNK)],
            len,
        }
    }

    pub(super) fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len {
            return None;
        }
        self.chunks.get(i / CHUNK)?[i % CHUNK].as_deref()
    }

    /// Put `v` at `i` (a place past the end is ignored), copying its chunk
    /// first if a snapshot still holds it.
    pub(super) fn set(&mut self, i: usize, v: Option<Arc<T>>) {
        if i >= self.len {
            return;
        }
        if let Some(c) = self.chunks.get_mut(i / CHUNK) {
            Arc::make_mut(c)[i % CHUNK] = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_copy_keeps_what_it_had() {
        let mut t: Table<u32> = Table::with_len(100);
        t.set(0, Some(Arc::new(1)));
        t.set(69, Some(Arc::new(2)));
        t.set(100, Some(Arc::new(3)));
        let published = t.clone();
        t.set(0, Some(Arc::new(4)));
        t.set(33, Some(Arc::new(5)));
        t.set(69, None);
        assert_eq!(published.get(0), Some(&1));
        assert_eq!(published.get(33), None);
        assert_eq!(published.get(69), Some(&2));
        assert_eq!(published.get(100), None);
        assert_eq!(t.get(0), Some(&4));
        assert_eq!(t.get(33), Some(&5));
        assert_eq!(t.get(69), None);
        // Untouched chunks are shared, written ones are not.
        assert!(Arc::ptr_eq(&t.chunks[3], &published.chunks[3]));
        assert!(!Arc::ptr_eq(&t.chunks[0], &published.chunks[0]));
    }
}
