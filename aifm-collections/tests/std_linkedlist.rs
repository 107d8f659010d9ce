//! Behaviours std's own `LinkedList` tests check, ported onto `RemList` with the
//! adaptations a migrating user makes (`front()`/`back()` return clones; a cursor's
//! `current()` clones too). Each test runs in the default runtime and in a 1 MiB runtime
//! with forced evacuation.

mod std_ports;

use aifm_collections::RemList;
use std::collections::LinkedList;
use std_ports::{both, Env};

fn l_of<T: aifm_core::FarData>(env: &Env, xs: impl IntoIterator<Item = T>) -> RemList<T> {
    RemList::from_iter_in(xs, &env.rt)
}

#[test]
fn basic() {
    both(|env| {
        let mut m = RemList::new_in(&env.rt);
        assert_eq!(m.pop_front(), None);
        assert_eq!(m.pop_back(), None);
        m.push_front(1u32);
        assert_eq!(m.pop_front(), Some(1));
        m.push_back(2);
        m.push_back(3);
        assert_eq!(m.len(), 2);
        assert_eq!(m.pop_front(), Some(2));
        assert_eq!(m.pop_front(), Some(3));
        assert_eq!(m.len(), 0);
        m.push_back(1);
        m.push_back(3);
        m.push_back(5);
        m.push_back(7);
        env.churn();
        assert_eq!(m.pop_front(), Some(1));
        let mut n = RemList::new_in(&env.rt);
        n.push_front(2);
        n.push_front(3);
        {
            assert_eq!(n.front(), Some(3));
            assert_eq!(n.back(), Some(2));
        }
        assert_eq!(n.pop_front(), Some(3));
        assert_eq!(n.pop_front(), Some(2));
        assert!(n.is_empty());
    });
}

#[test]
fn iterators_both_ways() {
    both(|env| {
        let m = l_of(env, 0..env.big() as u64);
        env.churn();
        let mut it = m.iter();
        assert_eq!(it.size_hint(), (env.big(), Some(env.big())));
        assert_eq!(it.next(), Some(0));
        assert_eq!(it.next_back(), Some(env.big() as u64 - 1));
        assert_eq!(it.len(), env.big() - 2);
        assert!(m.iter().rev().eq((0..env.big() as u64).rev()));
        assert!(m.into_iter().rev().eq((0..env.big() as u64).rev()));
    });
}

#[test]
fn eq_clone_debug_extend() {
    both(|env| {
        let mut n = l_of(env, [1u8, 2, 3]);
        let m = l_of(env, [1u8, 2, 3]);
        env.churn();
        assert!(n == m);
        n.push_front(0);
        assert!(n != m);
        assert_eq!(format!("{m:?}"), "[1, 2, 3]");
        let c = m.clone();
        assert!(c == m);
        n.extend([4, 5]);
        assert!(n.iter().eq(0..6));
        let v: RemList<u8> = vec![1, 2].into();
        assert_eq!(v.len(), 2);
    });
}

/// std's cursors are unstable; the expected lists are written out.
#[test]
fn cursor_edits() {
    both(|env| {
        let mut m = l_of(env, 1..=6u32);
        env.churn();
        {
            let mut c = m.cursor_front_mut();
            c.move_next();
            assert_eq!(c.current(), Some(2));
            c.insert_before(7);
            c.insert_after(8);
            assert_eq!(c.current(), Some(2));
            assert_eq!(c.remove_current(), Some(2));
            assert_eq!(c.current(), Some(8));
            c.move_prev();
            assert_eq!(c.current(), Some(7));
        }
        env.churn();
        assert!(m.iter().eq([1, 7, 8, 3, 4, 5, 6]));
    });
}

#[test]
fn model_against_linkedlist_with_evacuation() {
    both(|env| {
        let mut m = RemList::with_chunk_bytes_in(256, &env.rt);
        let mut s = LinkedList::new();
        let mut x = 5u64;
        for step in 0..env.big() as u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x % 6 {
                0 | 1 => {
                    m.push_back(step);
                    s.push_back(step);
                }
                2 | 3 => {
                    m.push_front(step);
                    s.push_front(step);
                }
                4 => assert_eq!(m.pop_front(), s.pop_front()),
                _ => assert_eq!(m.pop_back(), s.pop_back()),
            }
            if step % 50_000 == 0 {
                env.churn();
            }
        }
        env.churn();
        assert_eq!(m.len(), s.len());
        assert!(m.iter().eq(s.iter().copied()));
        m.retain(|x| x % 2 == 0);
        let s: LinkedList<u64> = s.into_iter().filter(|x| x % 2 == 0).collect();
        assert!(m.into_iter().eq(s));
        m = RemList::new_in(&env.rt);
        m.push_back(1);
        m.clear();
        assert!(m.is_empty());
    });
}
