//! Behaviours std's own `VecDeque` tests check, ported onto `RemQueue` with the adaptations
//! a migrating user makes (a scope for `front`/`back`, `iter()` yields clones). Each test
//! runs in the default runtime and in a 1 MiB runtime with forced evacuation.

mod std_ports;

use aifm_collections::RemQueue;
use aifm_core::Scope;
use std::collections::VecDeque;
use std_ports::{both, panics, Env};

fn q_of<T: aifm_core::FarData>(env: &Env, xs: impl IntoIterator<Item = T>) -> RemQueue<T> {
    RemQueue::from_iter_in(xs, &env.rt)
}

#[test]
fn simple() {
    both(|env| {
        let mut d = RemQueue::new_in(&env.rt);
        assert_eq!(d.len(), 0);
        d.push_front(17u32);
        d.push_front(42);
        d.push_back(137);
        assert_eq!(d.len(), 3);
        d.push_back(137);
        assert_eq!(d.len(), 4);
        env.churn();
        assert_eq!(d.front(&Scope::new()), Some(&42));
        assert_eq!(d.back(&Scope::new()), Some(&137));
        assert_eq!(d.pop_front(), Some(42));
        assert_eq!(d.pop_back(), Some(137));
        assert_eq!(d.pop_back(), Some(137));
        assert_eq!(d.pop_back(), Some(17));
        assert_eq!(d.len(), 0);
        d.push_back(3);
        d.push_back(4);
        d.push_front(2);
        d.push_front(1);
        assert!(d.iter().eq([1, 2, 3, 4]));
    });
}

#[test]
fn push_front_grow() {
    both(|env| {
        let mut d = RemQueue::new_in(&env.rt);
        for i in 0..env.big() {
            d.push_front(i);
        }
        env.churn();
        assert_eq!(d.len(), env.big());
        assert!(d.iter().eq((0..env.big()).rev()));
        let mut d = RemQueue::new_in(&env.rt);
        for i in 0..env.big() {
            d.push_back(i);
        }
        env.churn();
        assert!(d.iter().eq(0..env.big()));
    });
}

#[test]
fn as_stack_and_as_queue() {
    both(|env| {
        let mut stack = RemQueue::new_in(&env.rt);
        let mut fifo = RemQueue::new_in(&env.rt);
        for i in 0..env.big() as u64 {
            stack.push_back(i);
            fifo.push_back(i);
        }
        env.churn();
        for i in (0..env.big() as u64).rev() {
            assert_eq!(stack.pop_back(), Some(i));
        }
        for i in 0..env.big() as u64 {
            assert_eq!(fifo.pop_front(), Some(i));
        }
        assert_eq!((stack.pop_back(), fifo.pop_front()), (None, None));
    });
}

#[test]
fn front_back_mut() {
    both(|env| {
        let mut d = q_of(env, 0..env.big() as u32);
        env.churn();
        {
            let s = Scope::new();
            *d.front_mut(&s).unwrap() = 100;
            *d.back_mut(&s).unwrap() += 1;
        }
        env.churn();
        let s = Scope::new();
        assert_eq!(d.front(&s), Some(&100));
        assert_eq!(d.back(&s), Some(&(env.big() as u32)));
        let mut e: RemQueue<u32> = RemQueue::new_in(&env.rt);
        assert!(e.front_mut(&s).is_none() && e.back_mut(&s).is_none());
    });
}

#[test]
fn iter_both_ways_and_sizes() {
    both(|env| {
        let mut d = RemQueue::new_in(&env.rt);
        let mut m = VecDeque::new();
        for i in 0..env.big() as u64 {
            if i % 3 == 0 {
                d.push_front(i);
                m.push_front(i);
            } else {
                d.push_back(i);
                m.push_back(i);
            }
        }
        env.churn();
        let mut it = d.iter();
        assert_eq!(it.size_hint(), (m.len(), Some(m.len())));
        assert_eq!(it.next(), m.front().copied());
        assert_eq!(it.next_back(), m.back().copied());
        assert_eq!(it.len(), m.len() - 2);
        assert!(d.iter().rev().eq(m.iter().rev().copied()));
        assert_eq!(d.iter().sum::<u64>(), m.iter().sum::<u64>());
        assert!(d.into_iter().rev().eq(m.into_iter().rev()));
    });
}

#[test]
fn drain_ranges() {
    both(|env| {
        let mut d = q_of(env, 0..10u32);
        assert!(d.drain(2..5).eq([2, 3, 4]));
        assert!(d.iter().eq([0, 1, 5, 6, 7, 8, 9]));
        assert!(d.drain(..).rev().eq([9, 8, 7, 6, 5, 1, 0]));
        assert!(d.is_empty());
        let mut big = q_of(env, 0..env.big() as u64);
        env.churn();
        assert_eq!(big.drain(10..).len(), env.big() - 10);
        assert!(big.iter().eq(0..10));
        assert!(panics(|| drop(big.drain(5..11))));
    });
}

#[test]
fn retain_clear_extend() {
    both(|env| {
        let mut d = q_of(env, 0..env.big() as u64);
        env.churn();
        d.retain(|x| x % 2 == 0);
        assert!(d.iter().eq((0..env.big() as u64).step_by(2)));
        d.extend([1, 2, 3]);
        assert_eq!(d.iter().last(), Some(3));
        d.clear();
        assert!(d.is_empty());
        d.push_front(5);
        assert_eq!(d.pop_back(), Some(5));
    });
}

#[test]
fn eq_clone_debug() {
    both(|env| {
        let d = q_of(env, ["a".to_string(), "b".into()]);
        env.churn();
        assert_eq!(format!("{d:?}"), r#"["a", "b"]"#);
        let e = d.clone();
        assert!(d == e);
        let mut f = q_of(env, ["b".to_string()]);
        f.push_front("a".into());
        assert!(d == f);
        let g: RemQueue<u8> = vec![1, 2].into();
        assert_eq!(g.len(), 2);
    });
}

#[test]
fn model_against_vecdeque_with_evacuation() {
    both(|env| {
        let mut d = RemQueue::with_chunk_bytes_in(128, &env.rt);
        let mut m = VecDeque::new();
        let mut x = 99u64;
        for step in 0..env.big() as u64 * 2 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x % 8 {
                0..=2 => {
                    d.push_back(step);
                    m.push_back(step);
                }
                3..=4 => {
                    d.push_front(step);
                    m.push_front(step);
                }
                5 => assert_eq!(d.pop_front(), m.pop_front()),
                6 => assert_eq!(d.pop_back(), m.pop_back()),
                _ => {
                    let s = Scope::new();
                    assert_eq!((d.front(&s), d.back(&s)), (m.front(), m.back()));
                }
            }
            if step % 50_000 == 0 {
                env.churn();
            }
        }
        env.churn();
        assert!(d.iter().eq(m.iter().copied()));
    });
}
