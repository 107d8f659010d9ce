//! How a `RemList`'s chunks are linked, split when full and merged when sparse: the local
//! node slab's bookkeeping under the list's public operations.

use super::{Node, RemList, NIL};
use crate::common::fail;
use aifm_core::{FarData, RemBox, Scope};

impl<T: FarData> RemList<T> {
    #[track_caller]
    pub(super) fn new_node(&mut self, items: Vec<T>, prev: usize, next: usize) -> usize {
        let len = items.len();
        let mut v = Vec::with_capacity(self.chunk_len());
        v.extend(items);
        let chunk = match RemBox::try_new_in(v, &self.rt) {
            Ok(b) => b,
            Err(e) => fail("RemList", e),
        };
        let node = Node {
            chunk: Some(chunk),
            len,
            prev,
            next,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i] = node;
                i
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        if prev == NIL {
            self.head = i;
        } else {
            self.nodes[prev].next = i;
        }
        if next == NIL {
            self.tail = i;
        } else {
            self.nodes[next].prev = i;
        }
        i
    }

    pub(super) fn unlink(&mut self, i: usize) {
        let (prev, next) = (self.nodes[i].prev, self.nodes[i].next);
        if prev == NIL {
            self.head = next;
        } else {
            self.nodes[prev].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.nodes[next].prev = prev;
        }
        self.nodes[i].chunk = None;
        self.nodes[i].len = 0;
        self.free.push(i);
    }

    /// Runs `f` on node `i`'s elements, mutably.
    #[track_caller]
    pub(super) fn with_chunk<R>(&mut self, i: usize, f: impl FnOnce(&mut Vec<T>) -> R) -> R {
        let cl = self.chunk_len();
        let scope = Scope::new();
        let v = self.nodes[i]
            .chunk
            .as_mut()
            .expect("live node")
            .deref_mut(&scope);
        if v.capacity() < cl {
            v.reserve_exact(cl - v.len());
        }
        let r = f(v);
        self.nodes[i].len = v.len();
        r
    }

    /// Inserts `x` at position `at` of node `i`, splitting it first if it is full. Returns the
    /// node and offset where `x` landed.
    #[track_caller]
    pub(super) fn insert_at(&mut self, i: usize, at: usize, x: T) -> (usize, usize) {
        let cl = self.chunk_len();
        self.len += 1;
        if self.nodes[i].len < cl {
            self.with_chunk(i, |v| v.insert(at, x));
            return (i, at);
        }
        let upper = self.with_chunk(i, |v| v.split_off(cl / 2));
        let next = self.nodes[i].next;
        let j = self.new_node(upper, i, next);
        if at <= cl / 2 {
            self.with_chunk(i, |v| v.insert(at, x));
            (i, at)
        } else {
            let at = at - cl / 2;
            self.with_chunk(j, |v| v.insert(at, x));
            (j, at)
        }
    }

    /// Removes position `at` of node `i`; merges or unlinks the node as needed. Returns the
    /// element and the (node, offset) now holding its successor (`NIL` at the end).
    #[track_caller]
    pub(super) fn remove_at(&mut self, i: usize, at: usize) -> (T, usize, usize) {
        let x = self.with_chunk(i, |v| v.remove(at));
        self.len -= 1;
        let cl = self.chunk_len();
        let (mut node, mut off) = (i, at);
        if self.nodes[i].len == 0 {
            let next = self.nodes[i].next;
            self.unlink(i);
            return (x, next, 0);
        }
        let next = self.nodes[i].next;
        if self.nodes[i].len < cl / 4
            && next != NIL
            && self.nodes[i].len + self.nodes[next].len <= cl
        {
            let moved = {
                let scope = Scope::new();
                std::mem::take(
                    self.nodes[next]
                        .chunk
                        .as_mut()
                        .expect("live node")
                        .deref_mut(&scope),
                )
            };
            self.unlink(next);
            self.with_chunk(i, |v| v.extend(moved));
        }
        if off == self.nodes[i].len {
            node = self.nodes[i].next;
            off = 0;
        }
        (x, node, off)
    }
}
