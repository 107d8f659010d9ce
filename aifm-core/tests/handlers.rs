//! Evacuation handlers, structure ids, nontemporal placement.

use aifm_core::backend::faulty::Faulty;
use aifm_core::backend::{Backend, EmbeddedBackend, OBJECT_STORE_DEVICE};
use aifm_core::{Error, EvacuationHandler, ObjectView, RemBox, Runtime, Scope, WriteBack};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Default)]
struct Counting {
    write_backs: AtomicUsize,
    moves: AtomicUsize,
}

impl EvacuationHandler for Counting {
    fn write_back(&self, obj: &ObjectView<'_>, _far: &dyn Backend) -> aifm_core::Result<WriteBack> {
        assert!(obj.downcast::<[u64; 32]>().is_some());
        assert!(obj.downcast::<u8>().is_none());
        self.write_backs.fetch_add(1, Ordering::Relaxed);
        Ok(WriteBack::Default)
    }
    fn on_move(&self, old: *const u8, new: *mut u8) {
        assert_ne!(old, new as *const u8);
        self.moves.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn handler_sees_cold_objects_and_moves() {
    let rt = Runtime::builder().local_memory(1 << 20).build().unwrap();
    let handler = Arc::new(Counting::default());
    let s = rt
        .register_structure(OBJECT_STORE_DEVICE, &[], Some(handler.clone()))
        .unwrap();
    let objs: Vec<RemBox<[u64; 32]>> = (0..8000u64)
        .map(|i| RemBox::new_in_structure([i; 32], &s, i * 7).unwrap())
        .collect();
    // Heat the first hundred so the evacuator compacts (moves) rather than evicts them.
    for _ in 0..3 {
        let scope = Scope::new();
        objs[..100]
            .iter()
            .for_each(|o| assert_eq!(o.deref(&scope)[0], o.key() / 7));
    }
    rt.evacuate_now();
    assert!(handler.write_backs.load(Ordering::Relaxed) > 0);
    assert!(
        handler.moves.load(Ordering::Relaxed) > 0,
        "hot objects were compacted"
    );
    // Far copies live under the structure's own keys.
    let far = rt
        .backend()
        .read(s.id(), &(7 * 7u64).to_le_bytes())
        .unwrap();
    assert!(far.is_some() || objs[7].is_local());
    let mut scope = Scope::new();
    for (i, o) in objs.iter().enumerate() {
        assert_eq!(o.deref(&scope)[31], i as u64);
        scope.renew();
    }
}

/// Stores objects under its own key and detaches them, like a hash map evicting pairs.
struct Detaching;

impl EvacuationHandler for Detaching {
    fn write_back(&self, obj: &ObjectView<'_>, far: &dyn Backend) -> aifm_core::Result<WriteBack> {
        let v = obj.downcast::<[u64; 32]>().unwrap();
        far.write(
            obj.structure(),
            format!("pair-{}", v[0]).as_bytes(),
            &v[1].to_le_bytes(),
        )?;
        Ok(WriteBack::Detached)
    }
}

#[test]
fn detached_objects_live_only_under_the_structures_keys() {
    let rt = Runtime::builder().local_memory(1 << 20).build().unwrap();
    let s = rt
        .register_structure(OBJECT_STORE_DEVICE, &[], Some(Arc::new(Detaching)))
        .unwrap();
    let objs: Vec<RemBox<[u64; 32]>> = (0..4000u64)
        .map(|i| RemBox::new_in_structure([i; 32], &s, i).unwrap())
        .collect();
    rt.evacuate_now();
    let scope = Scope::new();
    let detached: Vec<_> = objs.iter().filter(|o| !o.is_local()).collect();
    assert!(!detached.is_empty());
    for o in detached {
        assert_eq!(o.try_deref(&scope).unwrap_err(), Error::Detached);
        let far = s
            .backend()
            .read(s.id(), format!("pair-{}", o.key()).as_bytes())
            .unwrap();
        assert_eq!(far.unwrap(), o.key().to_le_bytes());
    }
    drop(scope);
    drop(objs); // dropping detached boxes is fine: the structure owns their far data
}

#[test]
fn structure_ids_are_released_and_reused() {
    let rt = Runtime::builder().local_memory(1 << 20).build().unwrap();
    let a = rt
        .register_structure(OBJECT_STORE_DEVICE, &[], None)
        .unwrap();
    let id = a.id();
    assert_ne!(id, 0, "id 0 is the runtime's own store");
    drop(a);
    let b = rt
        .register_structure(OBJECT_STORE_DEVICE, &[], None)
        .unwrap();
    assert_eq!(b.id(), id);
    let err = rt
        .register_structure("no.such.device", &[], None)
        .unwrap_err();
    assert!(matches!(err, Error::UnknownDevice(_)));
}

#[test]
fn nontemporal_scan_does_not_evict_the_hot_set() {
    let rt = Runtime::builder().local_memory(4 << 20).build().unwrap();
    // A small hot set (256 KiB) and a large cold array (32 MiB), all written out once.
    let hot: Vec<RemBox<[u64; 128]>> = (0..256u64).map(|i| RemBox::new_in([i; 128], &rt)).collect();
    let big: Vec<RemBox<[u64; 512]>> = (0..8192u64)
        .map(|i| RemBox::new_in([i; 512], &rt))
        .collect();
    rt.evacuate_now();
    let touch_hot = || {
        let scope = Scope::new();
        hot.iter()
            .for_each(|h| assert_eq!(h.deref(&scope)[1], h.deref(&scope)[0]));
    };
    touch_hot();
    touch_hot();
    let fetches_before = rt.stats().fetches;
    let mut scope = Scope::new();
    let mut sum = 0;
    for (i, b) in big.iter().enumerate() {
        sum += b.deref_nt(&scope).unwrap()[0];
        if i % 32 == 0 {
            scope.renew();
        }
        if i % 1024 == 0 {
            drop(scope);
            touch_hot();
            scope = Scope::new();
        }
    }
    drop(scope);
    assert_eq!(sum, 8191 * 8192 / 2);
    let fetched = rt.stats().fetches - fetches_before;
    assert!(fetched >= 8192, "the scan came from far memory");
    let local_hot = hot.iter().filter(|h| h.is_local()).count();
    assert_eq!(
        local_hot,
        hot.len(),
        "the scan evicted {} hot objects",
        hot.len() - local_hot
    );
}

/// Hands the runtime its own key and bytes, so the runtime batches the writes.
struct DetachAs;

impl EvacuationHandler for DetachAs {
    fn write_back(&self, obj: &ObjectView<'_>, _far: &dyn Backend) -> aifm_core::Result<WriteBack> {
        let v = obj.downcast::<[u64; 32]>().unwrap();
        Ok(WriteBack::DetachAs {
            key: format!("k{}", v[0]).into_bytes(),
            value: v[1].to_le_bytes().to_vec(),
        })
    }
}

#[test]
fn detach_as_is_batched_by_the_runtime() {
    // Counts the requests that reach the store.
    let backend = Arc::new(Faulty::new(EmbeddedBackend::new()));
    let rt = Runtime::builder()
        .local_memory(1 << 20)
        .backend(backend.clone())
        .build()
        .unwrap();
    let s = rt
        .register_structure(OBJECT_STORE_DEVICE, &[], Some(Arc::new(DetachAs)))
        .unwrap();
    let objs: Vec<RemBox<[u64; 32]>> = (0..4000u64)
        .map(|i| RemBox::new_in_structure([i; 32], &s, i).unwrap())
        .collect();
    let before = backend.requests();
    rt.evacuate_now();
    let detached = objs.iter().filter(|o| !o.is_local()).count();
    let requests = (backend.requests() - before) as usize;
    assert!(detached > 1000, "{detached}");
    assert!(
        requests * 50 < detached,
        "{requests} requests for {detached} objects"
    );
    let scope = Scope::new();
    for o in objs.iter().filter(|o| !o.is_local()) {
        assert_eq!(o.try_deref(&scope).unwrap_err(), Error::Detached);
        let far = s
            .backend()
            .read(s.id(), format!("k{}", o.key()).as_bytes())
            .unwrap();
        assert_eq!(far.unwrap(), o.key().to_le_bytes());
    }
}
