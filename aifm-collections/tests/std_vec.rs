//! Behaviours std's own `Vec` tests check, ported onto `RemVec` with the adaptations a
//! migrating user makes: a scope for borrowed reads (`v.get(i, &scope)`), `get_cloned` or
//! `iter()` (clones) where std indexes, `*_in` constructors to pick the runtime. Each test
//! runs in the default runtime and in a 1 MiB runtime with forced evacuation.

mod std_ports;

use aifm_collections::RemVec;
use aifm_core::Scope;
use std::ops::Bound::{Excluded, Included, Unbounded};
use std_ports::{both, panics, Env};

fn v_of<T: aifm_core::FarData>(env: &Env, xs: impl IntoIterator<Item = T>) -> RemVec<T> {
    RemVec::from_iter_in(xs, &env.rt)
}

#[test]
fn push_pop_len() {
    both(|env| {
        let mut v = RemVec::new_in(&env.rt);
        assert!(v.is_empty());
        for i in 0..env.big() as u64 {
            v.push(i);
        }
        env.churn();
        assert_eq!(v.len(), env.big());
        for i in (0..env.big() as u64).rev() {
            assert_eq!(v.pop(), Some(i));
        }
        assert_eq!(v.pop(), None);
        assert!(v.is_empty());
    });
}

#[test]
fn indexing_and_get() {
    both(|env| {
        let v = v_of(env, [10u32, 20, 30]);
        env.churn();
        let scope = Scope::new();
        assert_eq!(v.get(1, &scope), Some(&20));
        assert_eq!(v.get(3, &scope), None);
        assert_eq!(v.get(usize::MAX, &scope), None);
        assert_eq!((v.first(&scope), v.last(&scope)), (Some(&10), Some(&30)));
    });
}

#[test]
fn get_mut_and_set() {
    both(|env| {
        let mut v = v_of(env, 0..env.big() as u64);
        env.churn();
        {
            let scope = Scope::new();
            *v.get_mut(7, &scope).unwrap() += 100;
            assert!(v.get_mut(env.big(), &scope).is_none());
        }
        assert_eq!(v.set(8, 1), 8);
        env.churn();
        assert_eq!(v.get_cloned(7), Some(107));
        assert_eq!(v.get_cloned(8), Some(1));
    });
}

#[test]
fn extend_and_extend_ref() {
    both(|env| {
        let mut v = v_of(env, [1u32, 2, 3]);
        let w: Vec<u32> = vec![4, 5, 6];
        v.extend(w.iter());
        v.extend(7..=9);
        v.extend_from_slice(&[10, 11]);
        env.churn();
        assert_eq!(v, (1..=11).collect::<Vec<_>>());
        let mut big = RemVec::new_in(&env.rt);
        big.extend(0..env.big() as u64);
        big.extend(0..env.big() as u64);
        env.churn();
        assert_eq!(big.len(), 2 * env.big());
        assert!(big.iter().skip(env.big()).eq(0..env.big() as u64));
    });
}

#[test]
fn clone_and_clone_from() {
    both(|env| {
        let v = v_of(env, (0..env.big()).map(|i| i.to_string()));
        env.churn();
        let w = v.clone();
        assert_eq!(v, w);
        let mut three = v_of(env, ["a".to_string(), "b".into(), "c".into()]);
        three.clone_from(&v);
        assert_eq!(three, v);
        let mut empty = RemVec::new_in(&env.rt);
        empty.clone_from(&v_of(env, vec![String::from("x")]));
        assert_eq!(empty.len(), 1);
    });
}

#[test]
fn retain() {
    both(|env| {
        let mut v = v_of(env, [1u32, 2, 3, 4]);
        v.retain(|&x| x % 2 == 0);
        assert_eq!(v, vec![2, 4]);
        let mut big = v_of(env, 0..env.big() as u64);
        env.churn();
        big.retain(|x| x % 3 == 0);
        assert_eq!(big.len(), env.big().div_ceil(3));
        assert!(big.iter().eq((0..env.big() as u64).step_by(3)));
    });
}

#[test]
fn zero_sized_values() {
    both(|env| {
        let mut v = RemVec::new_in(&env.rt);
        assert_eq!(v.len(), 0);
        v.push(());
        assert_eq!(v.len(), 1);
        v.push(());
        assert_eq!(v.len(), 2);
        assert_eq!(v.pop(), Some(()));
        assert_eq!(v.pop(), Some(()));
        assert_eq!(v.pop(), None);
        v.extend(std::iter::repeat_n((), 10_000));
        env.churn();
        assert_eq!(v.iter().count(), 10_000);
        assert_eq!(v.iter().rev().count(), 10_000);
        assert_eq!(v.into_iter().count(), 10_000);
        // Something in far memory for the tiny budget's check.
        let _keep = v_of(env, [1u8]);
        env.churn();
    });
}

#[test]
fn partition_and_zip_unzip() {
    both(|env| {
        let v = v_of(env, [1u32, 2, 3]);
        env.churn();
        let (l, r): (Vec<u32>, Vec<u32>) = v.iter().partition(|x| *x < 3);
        assert_eq!((l, r), (vec![1, 2], vec![3]));
        let w = v_of(env, [4u32, 5, 6]);
        let (a, b): (Vec<u32>, Vec<u32>) = v.iter().zip(w.iter()).unzip();
        assert_eq!((a, b), (vec![1, 2, 3], vec![4, 5, 6]));
    });
}

#[test]
fn into_iter_and_rev() {
    both(|env| {
        let v = v_of(env, 0..env.big() as u32);
        env.churn();
        let mut it = v.into_iter();
        assert_eq!(it.size_hint(), (env.big(), Some(env.big())));
        assert_eq!(it.next(), Some(0));
        assert_eq!(it.next_back(), Some(env.big() as u32 - 1));
        assert_eq!(it.len(), env.big() - 2);
        assert!(it.rev().eq((1..env.big() as u32 - 1).rev()));
        let strings = v_of(env, ["a".to_string(), "b".into()]);
        let mut n = 0;
        for s in strings {
            n += s.len();
        }
        assert_eq!(n, 2);
    });
}

#[test]
fn iter_adapters() {
    both(|env| {
        let v = v_of(env, 0..env.big() as u64);
        env.churn();
        let n = env.big() as u64;
        assert_eq!(v.iter().sum::<u64>(), n * (n - 1) / 2);
        assert_eq!(v.iter().max(), Some(n - 1));
        assert_eq!(v.iter().rev().nth(1), Some(n - 2));
        assert_eq!(v.iter().last(), Some(n - 1));
        assert_eq!(v.iter().step_by(1000).count(), env.big().div_ceil(1000));
        assert!(v.iter().skip(3).take(2).eq([3, 4]));
        assert_eq!(v.iter().position(|x| x == 4321), Some(4321));
        assert_eq!(v.iter().len(), env.big());
        // `iter_in` borrows from one scope and never renews it: every chunk it reaches stays
        // pinned, so it is for short runs (the whole vector does not fit a 1 MiB budget).
        let scope = Scope::new();
        assert_eq!(v.iter_in(&scope).next_back(), Some(&(n - 1)));
        assert_eq!(
            v.iter_in(&scope).take(1000).copied().sum::<u64>(),
            999 * 1000 / 2
        );
    });
}

#[test]
fn insert_and_remove() {
    both(|env| {
        let mut v = v_of(env, [1u32, 2, 3]);
        v.insert(1, 9);
        assert_eq!(v, vec![1, 9, 2, 3]);
        v.insert(4, 7);
        assert_eq!(v, vec![1, 9, 2, 3, 7]);
        assert_eq!(v.remove(0), 1);
        assert_eq!(v, vec![9, 2, 3, 7]);
        assert!(panics(|| v.insert(5, 0)));
        assert!(panics(|| {
            v.remove(4);
        }));
        let mut big = v_of(env, 0..env.big() as u64);
        env.churn();
        big.insert(1, 42);
        assert_eq!(big.remove(2), 1);
        assert_eq!(big.get_cloned(1), Some(42));
        assert_eq!(big.len(), env.big());
    });
}

#[test]
fn swap_remove() {
    both(|env| {
        let mut v = v_of(env, 0..env.big() as u64);
        env.churn();
        assert_eq!(v.swap_remove(0), 0);
        assert_eq!(v.get_cloned(0), Some(env.big() as u64 - 1));
        assert_eq!(v.len(), env.big() - 1);
        assert!(panics(|| {
            v.swap_remove(env.big());
        }));
    });
}

#[test]
fn truncate_clear_resize() {
    both(|env| {
        let mut v = v_of(env, 0..env.big() as u64);
        env.churn();
        v.truncate(env.big() + 5);
        assert_eq!(v.len(), env.big());
        v.truncate(600);
        assert!(v.iter().eq(0..600));
        v.resize(700, 9);
        assert_eq!(v.iter().skip(600).collect::<Vec<_>>(), vec![9; 100]);
        v.resize(2, 0);
        assert_eq!(v, vec![0, 1]);
        v.clear();
        assert!(v.is_empty());
        v.push(3);
        assert_eq!(v, vec![3]);
    });
}

#[test]
fn drain_items_and_ranges() {
    both(|env| {
        let mut v = v_of(env, [1u32, 2, 3]);
        let mut got = vec![];
        for x in v.drain(..) {
            got.push(x);
        }
        assert!(v.is_empty());
        assert_eq!(got, [1, 2, 3]);
        let mut v = v_of(env, [1u32, 2, 3]);
        assert_eq!(v.drain(..).rev().collect::<Vec<_>>(), [3, 2, 1]);
        let mut v = v_of(env, 0..10u32);
        assert!(v.drain(4..7).eq([4, 5, 6]));
        assert_eq!(v, vec![0, 1, 2, 3, 7, 8, 9]);
        let mut v = v_of(env, 0..10u32);
        assert!(v.drain(1..=3).eq([1, 2, 3]));
        assert!(v.drain((Excluded(0), Included(1))).eq([4]));
        assert!(v.drain((Unbounded, Excluded(1))).eq([0]));
        assert_eq!(v, vec![5, 6, 7, 8, 9]);
        let mut big = v_of(env, 0..env.big() as u64);
        env.churn();
        let n = env.big() as u64;
        assert!(big.drain(1000..env.big() - 1000).eq(1000..n - 1000));
        assert!(big.iter().eq((0..1000).chain(n - 1000..n)));
    });
}

#[test]
fn drain_bounds_panic_like_std() {
    both(|env| {
        let mut v = v_of(env, [1u32, 2, 3]);
        env.churn();
        assert!(panics(|| drop(v.drain(5..6))));
        #[allow(clippy::reversed_empty_ranges)]
        let r = 2..1;
        assert!(panics(|| drop(v.drain(r))));
        // std's drain_max_vec_size / drain_start_overflow / drain_end_overflow.
        assert!(panics(|| drop(
            v.drain((Excluded(usize::MAX), Included(0)))
        )));
        assert!(panics(|| drop(
            v.drain((Included(0), Included(usize::MAX)))
        )));
        assert!(panics(|| drop(
            v.drain((Included(usize::MAX), Included(usize::MAX)))
        )));
        assert_eq!(
            v,
            vec![1, 2, 3],
            "a drain that panics on its bounds removes nothing"
        );
    });
}

#[test]
fn append_and_split_off() {
    both(|env| {
        let mut a = v_of(env, [1u32, 2, 3]);
        let mut b = v_of(env, [4u32, 5, 6]);
        a.append(&mut b);
        assert_eq!(a, vec![1, 2, 3, 4, 5, 6]);
        assert!(b.is_empty());
        let tail = a.split_off(4);
        assert_eq!((a.len(), tail), (4, vec![5, 6].into()));
        assert!(panics(|| drop(a.split_off(5))));
        let mut big = v_of(env, 0..env.big() as u64);
        env.churn();
        let half = big.split_off(1024);
        assert_eq!(big.len(), 1024);
        assert!(half.iter().eq(1024..env.big() as u64));
        let odd = big.split_off(1000);
        assert!(odd.iter().eq(1000..1024));
        big.append(&mut v_of(env, [7u64]));
        assert_eq!(big.len(), 1001);
    });
}

#[test]
fn swap_and_contains() {
    both(|env| {
        let mut v = v_of(env, 0..env.big() as u64);
        env.churn();
        v.swap(0, env.big() - 1);
        assert_eq!(v.get_cloned(0), Some(env.big() as u64 - 1));
        assert!(v.contains(&(env.big() as u64 / 2)));
        assert!(!v.contains(&(env.big() as u64)));
        assert!(panics(|| v.swap(0, env.big())));
    });
}

#[test]
fn from_vec_eq_debug_default() {
    both(|env| {
        let v = RemVec::from_vec_in(vec![1u8, 2, 3], &env.rt);
        env.churn();
        assert_eq!(format!("{v:?}"), "[1, 2, 3]");
        assert_eq!(v, vec![1, 2, 3]);
        assert_eq!(v, [1, 2, 3][..]);
        assert_ne!(v, vec![1, 2]);
        let d: RemVec<u8> = RemVec::default();
        assert!(d.is_empty());
        let s: RemVec<String> = vec!["x".to_string()].into();
        assert_eq!(format!("{s:?}"), r#"["x"]"#);
    });
}

#[test]
fn for_each_mut_like_iter_mut() {
    both(|env| {
        let mut v = v_of(env, 0..env.big() as u32);
        env.churn();
        v.for_each_mut(|x| *x *= 2);
        env.churn();
        assert!(v.iter().eq((0..env.big() as u32).map(|x| x * 2)));
    });
}
