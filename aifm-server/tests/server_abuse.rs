//! Requests sized to hurt the server, against the real binary: each is refused (typed) before
//! the server spends memory on it, and the quota charges what a client really costs.

mod common;

use aifm_core::backend::{OBJECT_STORE, OBJECT_STORE_DEVICE};
use aifm_core::wire::{Blob, Op};
use aifm_core::Error;
use common::{Raw, Said, ServerProc};

/// Finding 2: a small `ReadMany` naming one large object many times would be a reply of
/// hundreds of MiB. It is refused before it is built: the server's peak memory stays near
/// one frame.
#[test]
fn a_read_many_naming_one_big_object_many_times_is_refused_before_it_is_built() {
    let server = ServerProc::start(&["--max-frame", "8MiB"]);
    let mut raw = Raw::login(&server.addr);
    let big = vec![7u8; 512 << 10];
    raw.put(1, b"big", &big);
    let keys = vec![Blob(b"big"); 600]; // a 2 KB request, a 300 MiB reply
    raw.send_op(
        2,
        &Op::ReadMany {
            ds: OBJECT_STORE,
            keys,
        },
    );
    assert!(matches!(raw.recv(), Said::Err(2, Error::Protocol(_))));
    let peak = server.peak_rss();
    assert!(peak < 96 << 20, "peak RSS {} MiB", peak >> 20);
    // The connection goes on.
    raw.send_op(3, &Op::Ping);
    assert_eq!(raw.recv(), Said::Ok(3, "Pong".into()));
}

/// Finding 2: one frame may name at most so many keys.
#[test]
fn a_batch_of_too_many_keys_is_refused_typed() {
    let server = ServerProc::start(&[]);
    let mut raw = Raw::login(&server.addr);
    let keys = vec![Blob(b"k"); 100_000];
    raw.send_op(
        1,
        &Op::ReadMany {
            ds: OBJECT_STORE,
            keys: keys.clone(),
        },
    );
    assert!(matches!(raw.recv(), Said::Err(1, Error::Protocol(_))));
    raw.send_op(
        2,
        &Op::RemoveMany {
            ds: OBJECT_STORE,
            keys,
        },
    );
    assert!(matches!(raw.recv(), Said::Err(2, Error::Protocol(_))));
    raw.send_op(3, &Op::Ping);
    assert_eq!(raw.recv(), Said::Ok(3, "Pong".into()));
}

/// The bytes the server says this session stores.
fn stored(raw: &mut Raw, id: u64) -> u64 {
    raw.send_op(id, &Op::StoredBytes);
    match raw.recv() {
        Said::Ok(i, s) if i == id => s
            .strip_prefix("Bytes(")
            .and_then(|s| s.strip_suffix(')'))
            .unwrap()
            .parse()
            .unwrap(),
        other => panic!("{other:?}"),
    }
}

/// Finding 7: a batch beyond the quota is refused as a whole; nothing of it is stored.
#[test]
fn a_refused_write_many_stores_nothing() {
    let server = ServerProc::start(&["--client-quota", "1MiB"]);
    let mut raw = Raw::login(&server.addr);
    let value = vec![1u8; 100 << 10];
    let keys: Vec<[u8; 8]> = (0..12u64).map(u64::to_le_bytes).collect();
    let items = keys.iter().map(|k| (Blob(&k[..]), Blob(&value))).collect();
    raw.send_op(
        1,
        &Op::WriteMany {
            ds: OBJECT_STORE,
            items,
        },
    );
    assert!(matches!(raw.recv(), Said::Err(1, Error::ServerFull { .. })));
    assert_eq!(stored(&mut raw, 2), 0);
    raw.send_op(
        3,
        &Op::Read {
            ds: OBJECT_STORE,
            key: Blob(&keys[0]),
        },
    );
    assert_eq!(raw.recv(), Said::Ok(3, "Value(None)".into()));
}

/// Finding 7: empty objects are not free: each is charged its bookkeeping, so a 1 MiB quota
/// holds far fewer than the 131,072 that charging key bytes alone would let in.
#[test]
fn empty_objects_are_charged_their_overhead() {
    let server = ServerProc::start(&["--client-quota", "1MiB"]);
    let mut raw = Raw::login(&server.addr);
    let mut accepted = 0u64;
    for batch in 0..300u64 {
        let keys: Vec<[u8; 8]> = (0..1000)
            .map(|i| (batch * 1000 + i).to_le_bytes())
            .collect();
        let items = keys.iter().map(|k| (Blob(&k[..]), Blob(b""))).collect();
        raw.send_op(
            batch,
            &Op::WriteMany {
                ds: OBJECT_STORE,
                items,
            },
        );
        match raw.recv() {
            Said::Ok(..) => accepted += 1000,
            Said::Err(_, e) if e.is_server_full() => break,
            other => panic!("{other:?}"),
        }
    }
    assert!(
        accepted <= (1 << 20) / 64,
        "{accepted} empty objects fit a 1 MiB quota"
    );
}

/// Finding 7: a structure costs memory whatever it stores; constructing is charged.
#[test]
fn constructing_structures_is_charged() {
    let server = ServerProc::start(&["--client-quota", "1MiB"]);
    let mut raw = Raw::login(&server.addr);
    let mut built = 0u32;
    for ds in 1..=20_000u32 {
        raw.send_op(
            ds as u64,
            &Op::Construct {
                ds,
                device: OBJECT_STORE_DEVICE,
                params: Blob(b""),
            },
        );
        match raw.recv() {
            Said::Ok(..) => built += 1,
            Said::Err(_, e) if e.is_server_full() => break,
            other => panic!("{other:?}"),
        }
    }
    assert!(built <= 1024, "{built} structures fit a 1 MiB quota");
    // Destroying them gives their charge back: one more fits.
    raw.send_op(1 << 40, &Op::Destruct { ds: 1 });
    assert_eq!(raw.recv(), Said::Ok(1 << 40, "Done".into()));
    raw.send_op(
        1 << 41,
        &Op::Construct {
            ds: 1,
            device: OBJECT_STORE_DEVICE,
            params: Blob(b""),
        },
    );
    assert_eq!(raw.recv(), Said::Ok(1 << 41, "Done".into()));
}

/// A device with a bug: every computation panics.
struct Buggy(aifm_core::engine::ObjectStore);

impl aifm_core::engine::RemoteDevice for Buggy {
    fn type_name(&self) -> &str {
        "test.buggy"
    }
    fn read(&self, k: &[u8]) -> aifm_core::Result<Option<Vec<u8>>> {
        self.0.read(k)
    }
    fn write(&self, k: &[u8], v: &[u8]) -> aifm_core::Result<()> {
        self.0.write(k, v)
    }
    fn remove(&self, k: &[u8]) -> aifm_core::Result<bool> {
        self.0.remove(k)
    }
    fn compute(&self, _op: u32, input: &[u8]) -> aifm_core::Result<Vec<u8>> {
        panic!("a device bug on {} input bytes", input.len())
    }
    fn clear(&self) {
        self.0.clear()
    }
}

fn buggy(r: &aifm_core::engine::DeviceRegistry) {
    r.register("test.buggy", |_, quota| {
        Ok(Box::new(Buggy(aifm_core::engine::ObjectStore::new(quota))))
    });
}

/// Finding 1: a panic in a device is a typed error for that request; the connection, its
/// session and the connection count are intact.
#[test]
fn a_panicking_device_fails_its_request_not_the_connection() {
    let server = common::in_process(aifm_server::Config {
        devices: vec![buggy],
        ..Default::default()
    });
    let addr = server.addr().to_string();
    let mut raw = Raw::login(&addr);
    raw.send_op(
        1,
        &Op::Construct {
            ds: 1,
            device: "test.buggy",
            params: Blob(b""),
        },
    );
    assert_eq!(raw.recv(), Said::Ok(1, "Done".into()));
    raw.send_op(
        2,
        &Op::Compute {
            ds: 1,
            opcode: 0,
            input: Blob(b"boom"),
        },
    );
    assert!(matches!(raw.recv(), Said::Err(2, Error::Remote(_))));
    raw.send_op(3, &Op::Ping);
    assert_eq!(raw.recv(), Said::Ok(3, "Pong".into()));
    drop(raw);
    assert!(common::eventually(|| server.stats().connections == 0));
}
