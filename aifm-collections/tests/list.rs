//! RemList against `Vec` (as a list with a cursor index), with far less local memory than data.

use aifm_collections::RemList;
use aifm_core::Runtime;
use quickcheck::{Arbitrary, Gen, QuickCheck};

#[derive(Debug, Clone)]
enum Op {
    PushBack(u64),
    PushFront(u64),
    PopBack,
    PopFront,
    /// Walk the cursor `n` steps forward from the front, then act.
    Cursor(u16, u8, u64),
    Evacuate,
    Retain(u8),
    Compare,
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        match u8::arbitrary(g) % 12 {
            0 | 1 => Op::PushBack(u64::arbitrary(g)),
            2 => Op::PushFront(u64::arbitrary(g)),
            3 => Op::PopBack,
            4 => Op::PopFront,
            5..=8 => Op::Cursor(u16::arbitrary(g), u8::arbitrary(g) % 4, u64::arbitrary(g)),
            9 => Op::Evacuate,
            10 => Op::Retain(u8::arbitrary(g) % 5 + 2),
            _ => Op::Compare,
        }
    }
}

fn run_model(ops: Vec<Op>) -> bool {
    let rt = Runtime::builder().local_memory(1 << 20).build().unwrap();
    // Small chunks so that splits and merges happen often.
    let mut l = RemList::with_chunk_bytes_in(256, &rt);
    let mut m: Vec<u64> = (0..(1u64 << 19)).collect();
    l.extend(m.iter().copied());
    rt.evacuate_now();
    for op in ops {
        match op {
            Op::PushBack(x) => {
                l.push_back(x);
                m.push(x);
            }
            Op::PushFront(x) => {
                l.push_front(x);
                m.insert(0, x);
            }
            Op::PopBack => assert_eq!(l.pop_back(), m.pop()),
            Op::PopFront => assert_eq!(l.pop_front(), (!m.is_empty()).then(|| m.remove(0))),
            Op::Cursor(n, act, x) => {
                let n = n as usize % 300;
                let mut c = l.cursor_front_mut();
                for _ in 0..n {
                    c.move_next();
                }
                // Position n of m (or the ghost past the end; the ghost wraps at len + 1).
                let pos = n % (m.len() + 1);
                assert_eq!(c.current(), m.get(pos).copied());
                match act {
                    0 => {
                        c.insert_after(x);
                        if pos == m.len() {
                            m.insert(0, x);
                        } else {
                            m.insert(pos + 1, x);
                        }
                    }
                    1 => {
                        c.insert_before(x);
                        m.insert(pos, x);
                        let now = if pos == m.len() - 1 {
                            None
                        } else {
                            m.get(pos + 1).copied()
                        };
                        assert_eq!(c.current(), now);
                    }
                    2 => {
                        let got = c.remove_current();
                        let want = (pos < m.len()).then(|| m.remove(pos));
                        assert_eq!(got, want);
                        assert_eq!(c.current(), m.get(pos).copied());
                    }
                    _ => {
                        c.move_prev();
                        // From the first element to the ghost; from the ghost to the last.
                        let want = if pos == 0 { None } else { m.get(pos - 1) };
                        assert_eq!(c.current(), want.copied());
                    }
                }
            }
            Op::Evacuate => rt.evacuate_now(),
            Op::Retain(d) => {
                l.retain(|x| x % d as u64 != 0);
                m.retain(|x| x % d as u64 != 0);
            }
            Op::Compare => assert!(l.iter().eq(m.iter().copied())),
        }
        assert_eq!(l.len(), m.len());
    }
    assert!(l.iter().eq(m.iter().copied()));
    assert!(l.iter().rev().eq(m.iter().rev().copied()));
    // Merges keep chunks reasonably full.
    assert!(
        l.chunks() <= m.len() / 2 + 2,
        "{} chunks for {}",
        l.chunks(),
        m.len()
    );
    let s = rt.stats();
    assert!(s.write_backs > 0 && s.fetches > 0, "{s}");
    true
}

#[test]
fn list_suite() {
    QuickCheck::new()
        .tests(5)
        .max_tests(5)
        .quickcheck(run_model as fn(Vec<Op>) -> bool);
    let l: RemList<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
    assert_eq!(format!("{l:?}"), r#"["a", "b"]"#);
    assert!(l.clone() == l);
    assert_eq!(l.into_iter().rev().collect::<Vec<_>>(), ["b", "a"]);
}
