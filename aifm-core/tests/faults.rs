//! Far memory that fails: nothing is lost, errors are typed, nothing panics or hangs.

use aifm_core::backend::faulty::Faulty;
use aifm_core::backend::EmbeddedBackend;
use aifm_core::{Error, RemBox, Runtime, Scope};
use std::sync::Arc;

#[test]
fn dead_far_memory_gives_typed_errors_and_loses_nothing() {
    // An embedded store that can be switched off, like a server that goes away.
    let far = Arc::new(Faulty::new(EmbeddedBackend::new()));
    let rt = Runtime::builder()
        .local_memory(1 << 20)
        .backend(far.clone())
        .build()
        .unwrap();
    let objs: Vec<RemBox<[u64; 64]>> = (0..4000u64).map(|i| RemBox::new_in([i; 64], &rt)).collect();
    rt.evacuate_now();
    let remote = objs
        .iter()
        .position(|o| !o.is_local())
        .expect("something was evacuated");

    far.set_down(true);
    {
        let scope = Scope::new();
        let err = objs[remote].try_deref(&scope).unwrap_err();
        assert!(err.is_disconnected(), "{err}");
    }
    // Allocations keep going; write-backs fail and objects stay local (within the overdraft).
    let more: Vec<_> = (0..200u64)
        .map(|i| RemBox::try_new_in([i; 64], &rt))
        .collect();
    assert!(more.iter().all(Result::is_ok));
    rt.evacuate_now();
    assert!(rt.stats().backend_errors > 0);

    far.set_down(false);
    let mut scope = Scope::new();
    for (i, o) in objs.iter().enumerate() {
        assert_eq!(o.deref(&scope)[0], i as u64, "object {i} lost");
        scope.renew();
    }
    for (i, o) in more.iter().enumerate() {
        assert_eq!(o.as_ref().unwrap().deref(&scope)[0], i as u64);
    }
}

#[test]
fn full_far_memory_keeps_objects_local() {
    let rt = Runtime::builder()
        .local_memory(1 << 20)
        .backend(EmbeddedBackend::new().with_capacity(64 << 10))
        .build()
        .unwrap();
    let objs: Vec<RemBox<[u64; 64]>> = (0..2000u64).map(|i| RemBox::new_in([i; 64], &rt)).collect();
    rt.evacuate_now();
    assert!(rt.stats().backend_errors > 0, "the store refused writes");
    assert!(rt.backend().stored_bytes() <= 64 << 10);
    let scope = Scope::new();
    for (i, o) in objs.iter().enumerate() {
        assert_eq!(o.deref(&scope)[0], i as u64);
    }
}

#[test]
fn exhausted_overdraft_is_an_error_not_a_crash() {
    let rt = Runtime::builder()
        .local_memory(1 << 20)
        .backend(EmbeddedBackend::new().with_capacity(0))
        .build()
        .unwrap();
    // Inside one long scope, with far memory refusing everything, allocation must stop with a
    // typed error once the bounded overdraft is spent.
    let scope = Scope::new();
    let mut objs = Vec::new();
    let err = loop {
        match RemBox::try_new_in([7u64; 512], &rt) {
            Ok(b) => objs.push(b),
            Err(e) => break e,
        }
        assert!(objs.len() < 10_000, "the overdraft must be bounded");
    };
    assert_eq!(err, Error::LocalMemoryExhausted);
    assert!(rt.stats().over_budget_episodes > 0);
    assert!(objs.iter().all(|o| o.deref(&scope)[511] == 7));
}

#[test]
fn bad_configuration_is_refused() {
    assert!(matches!(
        Runtime::builder().local_memory(1000).build(),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        Runtime::builder().thresholds(0.5, 0.1, 0.3).build(),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        Runtime::builder().region_size(3000).build(),
        Err(Error::Config(_))
    ));
}
