//! Every collection against its std twin on three real servers with replication 2, one of
//! them SIGKILLed half way through a random operation sequence: zero divergences, nothing lost.

mod common;

use aifm_collections::testing::{Fill, Twins, XorShift};

const OPS: usize = 60_000;

#[test]
fn collections_match_their_twins_across_a_server_kill() {
    let mut servers = common::start_servers(3);
    let rt = common::servers_builder(&servers).build().unwrap();
    // Enough data that most of it lives in far memory (2 MiB local).
    let mut twins = Twins::new_in(&rt, Fill::default());
    rt.evacuate_now();
    assert!(rt.stats().write_backs > 0);

    twins.run(&mut XorShift::new(0x5eed), OPS, 10_000, |n| {
        if n == OPS / 2 {
            servers[0].kill(); // SIGKILL, half way through
        }
    });
    twins.check();
    let servers_state = rt.stats().servers.expect("replicated");
    assert_eq!(
        (servers_state.live, servers_state.dead),
        (2, 1),
        "{}",
        rt.stats()
    );
}
