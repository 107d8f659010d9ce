//! A runtime connected to three servers by address (as `AIFM_SERVER=a,b,c` does) loses one,
//! is given a replacement with [`Runtime::replace_server`], waits for the rebuild, then loses
//! a second original server: every object still reads back, and the statistics tell the story.

mod common;

use aifm_core::{RemBox, Runtime, Scope};
use common::ServerProc;
use std::time::Duration;

/// 4 KiB objects, each filled with its own index.
type Page = [u64; 512];
const OBJECTS: u64 = 2048; // 8 MiB through 1 MiB of local memory

fn check(objects: &[RemBox<Page>]) {
    for (i, o) in objects.iter().enumerate() {
        let scope = Scope::new();
        let page = o.try_deref(&scope).expect("object lost");
        assert!(page.iter().all(|&w| w == i as u64), "object {i} corrupted");
    }
}

#[test]
fn replace_server_rebuilds_what_the_dead_server_held() {
    let mut servers: Vec<ServerProc> = common::start_servers(3);
    let addrs: Vec<String> = servers.iter().map(|s| s.addr.clone()).collect();
    let rt = Runtime::builder()
        .local_memory(1 << 20)
        .servers(addrs.clone())
        .replicas(2)
        .build()
        .unwrap();
    assert!(rt.servers().is_some());
    let objects: Vec<RemBox<Page>> = (0..OBJECTS)
        .map(|i| RemBox::new_in([i; 512], &rt))
        .collect();
    assert!(rt.stats().write_backs > 0, "objects must reach far memory");

    // A live server cannot be replaced.
    let spare = ServerProc::start(&[]);
    assert!(rt.replace_server(0, &spare.addr).is_err());

    servers[0].kill();
    check(&objects); // degraded reads from the survivors
    let s = rt.stats().servers.unwrap();
    assert_eq!((s.live, s.dead), (2, 1));

    rt.replace_server(0, &spare.addr).unwrap();
    rt.wait_rebuilt(0, Duration::from_secs(60)).unwrap();
    let s = rt.stats().servers.unwrap();
    assert_eq!((s.live, s.dead, s.replaced), (3, 0, 1));
    assert!(
        s.rebuilt_objects > 0,
        "the replacement must get copies: {s:?}"
    );
    assert!(rt.stats().to_string().contains("servers replaced"));

    // Without the rebuild, objects whose two copies were on servers 0 and 1 would be gone.
    servers[1].kill();
    check(&objects);
    let s = rt.stats().servers.unwrap();
    assert_eq!((s.live, s.dead), (2, 1));
    assert_eq!(s.unrecoverable_objects, 0);
}
