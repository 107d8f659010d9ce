//! `CursorMut`: a position in a `RemList` that can insert and remove where it stands.

use super::{RemList, NIL};
use aifm_core::FarData;
use std::fmt;

/// A cursor over a [`RemList`] that can insert and remove where it stands. Past the last
/// element it stands on the "ghost" position (no current element).
///
/// # Examples
///
/// ```
/// let mut l: aifm_collections::RemList<u32> = (0..2000).collect();
/// let mut c = l.cursor_front_mut();
/// for _ in 0..1000 { c.move_next(); }
/// c.insert_after(7);
/// assert_eq!(c.current(), Some(1000));
/// c.move_next();
/// assert_eq!(c.current(), Some(7));
/// ```
pub struct CursorMut<'a, T: FarData> {
    pub(super) list: &'a mut RemList<T>,
    pub(super) node: usize,
    pub(super) off: usize,
}

impl<T: FarData> CursorMut<'_, T> {
    /// A clone of the current element.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut l: aifm_collections::RemList<u8> = (3..5).collect();
    /// assert_eq!(l.cursor_front_mut().current(), Some(3));
    /// ```
    pub fn current(&self) -> Option<T>
    where
        T: Clone,
    {
        self.list.peek(self.node, self.off)
    }

    /// Runs `f` on the current element, mutably.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut l: aifm_collections::RemList<u8> = (3..5).collect();
    /// l.cursor_front_mut().with_current(|x| *x = 9);
    /// assert_eq!(l.front(), Some(9));
    /// ```
    #[track_caller]
    pub fn with_current<R>(&mut self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        if self.node == NIL {
            return None;
        }
        let off = self.off;
        Some(self.list.with_chunk(self.node, |v| f(&mut v[off])))
    }

    /// Moves to the next element (from the last one to the ghost, from the ghost to the first).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut l: aifm_collections::RemList<u8> = (0..2).collect();
    /// let mut c = l.cursor_front_mut();
    /// c.move_next();
    /// c.move_next();
    /// assert_eq!(c.current(), None);
    /// c.move_next();
    /// assert_eq!(c.current(), Some(0));
    /// ```
    pub fn move_next(&mut self) {
        if self.node == NIL {
            self.node = self.list.head;
            self.off = 0;
            return;
        }
        self.off += 1;
        if self.off >= self.list.nodes[self.node].len {
            self.node = self.list.nodes[self.node].next;
            self.off = 0;
            if self.node != NIL {
                self.list.prefetch(self.list.nodes[self.node].next);
            }
        }
    }

    /// Moves to the previous element (from the first one to the ghost, from the ghost to the
    /// last).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut l: aifm_collections::RemList<u8> = (0..2).collect();
    /// let mut c = l.cursor_front_mut();
    /// c.move_prev();
    /// c.move_prev();
    /// assert_eq!(c.current(), Some(1));
    /// ```
    pub fn move_prev(&mut self) {
        if self.node == NIL {
            self.node = self.list.tail;
            self.off = self.list.nodes.get(self.node).map_or(0, |n| n.len - 1);
            return;
        }
        if self.off == 0 {
            self.node = self.list.nodes[self.node].prev;
            if self.node != NIL {
                self.off = self.list.nodes[self.node].len - 1;
                self.list.prefetch(self.list.nodes[self.node].prev);
            }
        } else {
            self.off -= 1;
        }
    }

    /// Inserts `x` after the current element (at the front when on the ghost).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut l: aifm_collections::RemList<u8> = (0..2).collect();
    /// l.cursor_front_mut().insert_after(5);
    /// assert_eq!(l.iter().collect::<Vec<_>>(), [0, 5, 1]);
    /// ```
    #[track_caller]
    pub fn insert_after(&mut self, x: T) {
        if self.node == NIL {
            return self.list.push_front(x);
        }
        let cl = self.list.chunk_len();
        let (node, off) = (self.node, self.off);
        let full = self.list.nodes[node].len == cl;
        self.list.insert_at(node, off + 1, x);
        if full && off >= cl / 2 {
            // The split moved the current element to the new upper node.
            self.node = self.list.nodes[node].next;
            self.off = off - cl / 2;
        }
    }

    /// Inserts `x` before the current element (at the back when on the ghost); the cursor
    /// stays on the same element.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut l: aifm_collections::RemList<u8> = (0..2).collect();
    /// let mut c = l.cursor_front_mut();
    /// c.move_next();
    /// c.insert_before(5);
    /// assert_eq!(c.current(), Some(1));
    /// assert_eq!(l.iter().collect::<Vec<_>>(), [0, 5, 1]);
    /// ```
    #[track_caller]
    pub fn insert_before(&mut self, x: T) {
        if self.node == NIL {
            return self.list.push_back(x);
        }
        let (n, o) = self.list.insert_at(self.node, self.off, x);
        // The current element now sits right after the inserted one.
        self.node = n;
        self.off = o;
        self.move_next();
    }

    /// Removes the current element and moves to its successor.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut l: aifm_collections::RemList<u8> = (0..3).collect();
    /// let mut c = l.cursor_front_mut();
    /// assert_eq!(c.remove_current(), Some(0));
    /// assert_eq!(c.current(), Some(1));
    /// ```
    #[track_caller]
    pub fn remove_current(&mut self) -> Option<T> {
        if self.node == NIL {
            return None;
        }
        let (x, node, off) = self.list.remove_at(self.node, self.off);
        self.node = node;
        self.off = off;
        Some(x)
    }
}

impl<T: FarData> fmt::Debug for CursorMut<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CursorMut")
            .field("node", &self.node)
            .field("offset", &self.off)
            .finish()
    }
}
