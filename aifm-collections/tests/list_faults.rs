//! `RemList`'s fallible twins: when far memory is gone they report it and leave the list as it
//! was; when it comes back, everything is there.

use aifm_collections::RemList;
use aifm_core::backend::faulty::Faulty;
use aifm_core::backend::EmbeddedBackend;
use aifm_core::Runtime;
use std::sync::Arc;

#[test]
fn try_operations_fail_cleanly_and_lose_nothing() {
    let far = Arc::new(Faulty::new(EmbeddedBackend::new()));
    let rt = Runtime::builder()
        .local_memory(1 << 20)
        .backend(far.clone())
        .build()
        .unwrap();
    let mut l = RemList::new_in(&rt);
    for i in 0..400_000u32 {
        l.push_back(i);
    }
    // An evacuation stops at its free target, so which chunks leave depends on the rounds the
    // pushes' pressure already ran (on a loaded machine the front chunk was once still local
    // after two passes). Keep making room with fresh objects until both ends are far: while
    // far memory is down, `try_front`/`try_back` on a far end fail and change nothing.
    let mut filler = Vec::new();
    let mut both_far = false;
    for _ in 0..64 {
        rt.evacuate_now();
        far.set_down(true);
        both_far = l.try_front().is_err() && l.try_back().is_err();
        if both_far {
            break;
        }
        far.set_down(false);
        filler.extend((0..64).map(|i| aifm_core::RemBox::new_in([i as u64; 512], &rt)));
    }
    assert!(both_far, "the list's ends never left local memory");
    // Both ends were evicted, so every twin needs far memory, and far memory is down.
    let len = l.len();
    assert!(l.try_pop_front().unwrap_err().is_disconnected());
    assert!(l.try_pop_back().unwrap_err().is_disconnected());
    assert!(l.try_push_back(7).unwrap_err().is_disconnected());
    assert!(l.try_push_front(7).unwrap_err().is_disconnected());
    assert!(l.try_front().unwrap_err().is_disconnected());
    assert_eq!(l.len(), len, "nothing changed");
    far.set_down(false);
    assert_eq!(l.try_pop_front().unwrap(), Some(0));
    assert_eq!(l.try_pop_back().unwrap(), Some(399_999));
    l.try_push_front(1_000_000).unwrap();
    assert_eq!(l.try_front().unwrap(), Some(1_000_000));
    assert_eq!(l.iter().skip(1).take(3).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(l.len(), len - 1);
}
