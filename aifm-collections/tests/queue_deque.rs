//! `RemQueue` as a double-ended queue (it had no `push_front`, `pop_back` or `back`,
//! so it could not serve as a stack).

use aifm_collections::RemQueue;
use aifm_core::{Runtime, Scope};
use std::collections::VecDeque;

#[test]
fn as_a_stack() {
    let mut q = RemQueue::new();
    for i in 0..5000u32 {
        q.push_back(i);
    }
    for i in (0..5000u32).rev() {
        assert_eq!(q.back(&Scope::new()), Some(&i));
        assert_eq!(q.pop_back(), Some(i));
    }
    assert_eq!(q.pop_back(), None);
    assert!(q.is_empty());
}

#[test]
fn both_ends_like_vecdeque() {
    let rt = Runtime::builder().local_memory(1 << 20).build().unwrap();
    let mut q = RemQueue::with_chunk_bytes_in(64, &rt);
    let mut m = VecDeque::new();
    let mut x = 7u64;
    for step in 0..40_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        match x % 6 {
            0 | 1 => {
                q.push_front(step);
                m.push_front(step);
            }
            2 | 3 => {
                q.push_back(step);
                m.push_back(step);
            }
            4 => assert_eq!(q.pop_front(), m.pop_front()),
            _ => assert_eq!(q.pop_back(), m.pop_back()),
        }
        if step % 10_000 == 0 {
            rt.evacuate_now();
        }
        let s = Scope::new();
        assert_eq!(q.front(&s), m.front());
        assert_eq!(q.back(&s), m.back());
        assert_eq!(q.len(), m.len());
    }
    assert_eq!(q.iter().len(), m.len());
    assert!(q.iter().eq(m.iter().copied()));
    assert!(q.iter().rev().eq(m.iter().rev().copied()));
    {
        let s = Scope::new();
        if let Some(b) = q.back_mut(&s) {
            *b += 1;
        }
        if let Some(f) = q.front_mut(&s) {
            *f += 1;
        }
    }
    if let Some(b) = m.back_mut() {
        *b += 1;
    }
    if let Some(f) = m.front_mut() {
        *f += 1;
    }
    assert!(q.into_iter().rev().eq(m.into_iter().rev()));
}

#[test]
fn iter_reports_its_length() {
    let mut q: RemQueue<u8> = (0..10).collect();
    q.pop_front();
    let mut it = q.iter();
    assert_eq!(it.size_hint(), (9, Some(9)));
    assert_eq!(it.next_back(), Some(9));
    assert_eq!(it.len(), 8);
}
