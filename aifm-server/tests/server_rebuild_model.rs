//! Every collection against its std twin on three real servers with replication 2: one server
//! is SIGKILLed, a new server replaces it and is rebuilt while the operations go on, then a
//! *second* original server is SIGKILLed. The objects both dead servers held survive only
//! through the rebuild; the test checks there are such objects, and that nothing is lost
//! and nothing diverges.

mod common;

use aifm_collections::testing::{Fill, Twins, XorShift};
use aifm_core::backend::{Backend, OBJECT_STORE};
use common::ServerProc;
use std::sync::Arc;
use std::time::Duration;

const OPS: usize = 60_000;
/// Structure ids the runtime hands out, in creation order (checked below).
const VEC_ID: u32 = 1;
const MAP_ID: u32 = 2;

#[test]
fn collections_match_their_twins_across_a_kill_a_rebuild_and_a_second_kill() {
    let mut servers = common::start_servers(3);
    let far = Arc::new(common::replicated(&servers).with_replicas(2));
    let rt = common::small_runtime(far.clone());
    let mut twins = Twins::new_in(&rt, Fill::default());
    rt.evacuate_now();
    assert!(rt.stats().write_backs > 0);
    // The vector and the map are the structures we think they are.
    let probe = &far.servers()[0];
    assert!(probe.keys(VEC_ID).is_ok() && probe.keys(MAP_ID).is_ok());
    assert!(probe.keys(MAP_ID + 1).unwrap_err() == aifm_core::Error::UnknownStructure(MAP_ID + 1));
    // Kill both holders of the map, one after the other: without the rebuild the map's
    // evicted pairs (and a third of the striped objects) would be gone.
    let map_set = far.placement(MAP_ID, b"");
    let (first, second) = (map_set[0], map_set[1]);

    let mut replacement: Option<ServerProc> = None;
    twins.run(&mut XorShift::new(0x5eed_0007), OPS, 10_000, |n| {
        if n == OPS / 4 {
            servers[first].kill(); // SIGKILL
        }
        if n == OPS / 4 + 2_000 {
            assert!(!far.is_live(first), "the kill was noticed");
            let new = ServerProc::start(&[]);
            far.replace_server(first, Box::new(new.client())).unwrap();
            replacement = Some(new); // the rebuild runs while the operations go on
        }
        if n == OPS * 2 / 3 {
            far.wait_rebuilt(first, Duration::from_secs(60)).unwrap();
            // The replacement holds objects whose only other copy is on `second`.
            let on_both = far.servers()[first]
                .keys(OBJECT_STORE)
                .unwrap()
                .into_iter()
                .filter(|k| {
                    let set = far.placement(OBJECT_STORE, k);
                    set.contains(&first) && set.contains(&second)
                })
                .count();
            assert!(on_both > 100, "{on_both} objects depend on the rebuild");
            assert!(!far.servers()[first].keys(MAP_ID).unwrap().is_empty());
            servers[second].kill(); // SIGKILL a different original server
        }
    });
    twins.check();
    let s = far.stats();
    assert_eq!(
        (s.live, s.rebuilding, s.dead, s.replaced),
        (2, 0, 1, 1),
        "{s:?}"
    );
    assert!(s.rebuilt_objects > 0 && s.rebuilt_bytes > 0, "{s:?}");
    assert_eq!(s.unrecoverable_objects, 0, "{s:?}");
    assert_eq!(far.dead_servers()[0].0, second);
    drop(replacement);
}
