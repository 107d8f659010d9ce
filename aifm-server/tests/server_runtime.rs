//! The runtime, sessions and pipelining through the real `aifm-server` binary.

mod common;

use aifm_core::backend::tcp::TcpBuilder;
use aifm_core::backend::{Backend, OBJECT_STORE};
use aifm_core::{RemBox, Scope};
use common::{eventually, Relay, ServerProc};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

fn value(i: u64) -> [u64; 128] {
    common::pattern(i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

#[test]
fn runtime_evicts_to_and_fetches_from_a_real_server() {
    let server = ServerProc::start(&[]);
    let rt = server.runtime(4 << 20);
    assert!(rt.backend_name().starts_with("tcp://"));
    // 8 MiB of objects through 4 MiB of local memory.
    let n = 8 * 1024;
    let boxes: Vec<RemBox<[u64; 128]>> = (0..n).map(|i| RemBox::new_in(value(i), &rt)).collect();
    let mut scope = Scope::new();
    for round in 0..2 {
        for (i, b) in boxes.iter().enumerate() {
            assert_eq!(
                *b.deref(&scope),
                value(i as u64),
                "object {i}, round {round}"
            );
            scope.renew();
        }
    }
    drop(scope);
    let stats = rt.stats();
    assert!(stats.write_backs > 0, "{stats:?}");
    assert!(stats.fetches > 0, "{stats:?}");
    assert_eq!(stats.backend_errors, 0, "{stats:?}");
    assert!(rt.backend().stored_bytes() > 0);
}

#[test]
fn sessions_resume_after_a_cut_connection() {
    let server = ServerProc::start(&[]);
    let relay = Relay::new(&server.addr);
    let far = TcpBuilder::new(relay.addr.clone())
        .timeout(Duration::from_secs(10))
        .connect()
        .unwrap();
    far.write(OBJECT_STORE, b"k", b"kept").unwrap();
    relay.cut_all();
    // The cut is seen as a typed error (or, if the call raced ahead of it, not at all)...
    let mut saw_disconnect = false;
    assert!(eventually(|| match far.read(OBJECT_STORE, b"k") {
        Err(e) => {
            assert!(e.is_disconnected(), "{e:?}");
            saw_disconnect = true;
            false
        }
        Ok(v) => {
            assert_eq!(v.as_deref(), Some(&b"kept"[..]));
            saw_disconnect
        }
    }));
    // ...and the reconnection resumed the same session, objects intact.
    assert_eq!(far.reconnects(), 1);
    assert_eq!(far.read(OBJECT_STORE, b"k").unwrap().unwrap(), b"kept");
}

#[test]
fn explicit_resume_and_reclaim_after_grace() {
    let server = ServerProc::start(&["--grace", "50ms"]);
    let far = server.client();
    far.write(OBJECT_STORE, b"k", &[1; 1000]).unwrap();
    let ticket = far.resume_ticket();
    drop(far);
    let watcher = server.client();
    assert!(eventually(|| watcher
        .server_stats()
        .unwrap()
        .reclaimed_sessions
        >= 1));
    let e = server.builder().resume(ticket).connect().unwrap_err();
    assert!(e.is_disconnected(), "{e:?}");
    assert_eq!(watcher.server_stats().unwrap().stored_bytes, 0);

    // Within the grace period the namespace comes back.
    let server = ServerProc::start(&["--grace", "1h"]);
    let far = server.client();
    far.write(OBJECT_STORE, b"k", b"mine").unwrap();
    let ticket = far.resume_ticket();
    drop(far);
    let back = server.builder().resume(ticket).connect().unwrap();
    assert_eq!(back.session(), ticket.session);
    assert_eq!(back.read(OBJECT_STORE, b"k").unwrap().unwrap(), b"mine");
}

#[test]
fn restarted_server_loses_the_session_and_the_client_says_so() {
    let mut server = ServerProc::start(&[]);
    let addr = server.addr.clone();
    let far = server.client();
    far.write(OBJECT_STORE, b"k", b"v").unwrap();
    server.kill();
    assert!(far.read(OBJECT_STORE, b"k").unwrap_err().is_disconnected());
    let _again = ServerProc::start_on(&addr, &[]);
    // Reconnection succeeds but the session is gone: the backend refuses to pretend.
    assert!(eventually(|| {
        let e = far.read(OBJECT_STORE, b"k").unwrap_err();
        assert!(e.is_disconnected(), "{e:?}");
        e.to_string().contains("no longer holds session")
    }));
}

#[test]
fn clients_are_isolated() {
    let server = ServerProc::start(&[]);
    let (a, b) = (server.client(), server.client());
    a.write(OBJECT_STORE, b"k", b"a's").unwrap();
    assert_eq!(b.read(OBJECT_STORE, b"k").unwrap(), None);
    b.write(OBJECT_STORE, b"k", b"b's").unwrap();
    assert_eq!(a.read(OBJECT_STORE, b"k").unwrap().unwrap(), b"a's");
    assert_eq!(server.client().server_stats().unwrap().sessions, 3);
}

#[test]
fn pipelined_and_batched_requests_from_many_threads() {
    let server = ServerProc::start(&[]);
    let far = Arc::new(server.client());
    let keys: Vec<[u8; 8]> = (0..5000u64).map(|i| i.to_le_bytes()).collect();
    let vals: Vec<Vec<u8>> = (0..5000u64)
        .map(|i| vec![i as u8; 1 + (i as usize * 7) % 3000])
        .collect();
    let items: Vec<(&[u8], &[u8])> = keys
        .iter()
        .zip(&vals)
        .map(|(k, v)| (&k[..], &v[..]))
        .collect();
    far.write_many(OBJECT_STORE, &items).unwrap(); // more than one batch piece
    let key_refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    let got = far.read_many(OBJECT_STORE, &key_refs).unwrap();
    assert!(got.iter().zip(&vals).all(|(g, v)| g.as_ref() == Some(v)));
    let vals = Arc::new(vals);
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let (far, vals) = (far.clone(), vals.clone());
            thread::spawn(move || {
                for i in (t..5000).step_by(7) {
                    let v = far.read(OBJECT_STORE, &i.to_le_bytes()).unwrap().unwrap();
                    assert_eq!(v, vals[i as usize]);
                }
                // A window of reads in flight from one thread.
                for chunk in (0..5000u64).collect::<Vec<_>>().chunks(64) {
                    let pending: Vec<_> = chunk
                        .iter()
                        .map(|i| far.start_read(OBJECT_STORE, &i.to_le_bytes()).unwrap())
                        .collect();
                    for (p, i) in pending.into_iter().zip(chunk) {
                        assert_eq!(p.wait().unwrap().unwrap(), vals[*i as usize]);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    far.remove_many(OBJECT_STORE, &key_refs).unwrap();
    assert_eq!(far.stored_bytes(), 0);
    let stats = far.server_stats().unwrap();
    assert!(stats.requests.write_many >= 2, "{stats:?}");
    assert!(stats.requests.read >= 4 * 5000, "{stats:?}");
}

#[test]
fn batch_replies_larger_than_a_frame_fall_back_to_single_reads() {
    let server = ServerProc::start(&["--max-frame", "64KiB"]);
    let far = server.client();
    let keys: Vec<[u8; 1]> = (0..8u8).map(|i| [i]).collect();
    for k in &keys {
        far.write(OBJECT_STORE, k, &[k[0]; 16 << 10]).unwrap();
    }
    let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    let got = far.read_many(OBJECT_STORE, &refs).unwrap();
    for (i, v) in got.iter().enumerate() {
        assert_eq!(v.as_deref(), Some(&[i as u8; 16 << 10][..]));
    }
    // A single object larger than a frame is a typed error, and the connection survives.
    let e = far
        .write(OBJECT_STORE, b"big", &[0; 100 << 10])
        .unwrap_err();
    assert!(matches!(e, aifm_core::Error::Protocol(_)), "{e:?}");
    far.ping().unwrap();

    // The pipelined form falls back the same way, after `begin_read_many` has returned: the
    // answer keeps its own copy of the keys and its own handle on the connection, so neither
    // the caller's keys nor the backend need to outlive it. A small batch started in between
    // completes on its own.
    let singles_before = far.server_stats().unwrap().requests.read;
    let mut asked: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
    asked.push(b"absent".to_vec());
    let asked_len = asked.len();
    let big = {
        let refs: Vec<&[u8]> = asked.iter().map(|k| &k[..]).collect();
        far.begin_read_many(OBJECT_STORE, &refs)
    };
    let small = far.begin_read_many(OBJECT_STORE, &[&[3u8][..], b"absent"]);
    drop(asked);
    assert_eq!(
        small.wait().unwrap(),
        [Some(vec![3u8; 16 << 10]), None],
        "a batch that fits a frame"
    );
    let stats = server.client();
    drop(far);
    let got = big.wait().unwrap();
    assert_eq!(got.len(), keys.len() + 1);
    for (i, v) in got[..keys.len()].iter().enumerate() {
        assert_eq!(v.as_deref(), Some(&[i as u8; 16 << 10][..]));
    }
    assert_eq!(got[keys.len()], None);
    // The big batch was fetched again one object at a time (the server counts single reads;
    // the small batch and the statistics requests are not single reads).
    let singles = stats.server_stats().unwrap().requests.read - singles_before;
    assert_eq!(
        singles, asked_len as u64,
        "one single read per key of the big batch"
    );
}

#[test]
fn stats_count_requests_by_type() {
    let server = ServerProc::start(&[]);
    let far = server.client();
    far.write(OBJECT_STORE, b"a", b"1").unwrap();
    far.read(OBJECT_STORE, b"a").unwrap();
    far.read(OBJECT_STORE, b"zz").unwrap();
    far.remove(OBJECT_STORE, b"a").unwrap();
    let s = far.server_stats().unwrap();
    assert_eq!(
        (s.requests.write, s.requests.read, s.requests.remove),
        (1, 2, 1)
    );
    assert_eq!(s.connections, 1);
    assert_eq!(s.sessions, 1);
    assert_eq!(s.capacity_bytes, 8 << 30);
}

#[test]
fn threads_mutate_objects_that_travel_through_the_server() {
    let server = ServerProc::start(&[]);
    let rt = server.runtime(4 << 20);
    // Two threads, 4 MiB of objects each, 4 MiB of local memory between them.
    let workers: Vec<_> = (0..2u64)
        .map(|t| {
            let rt = rt.clone();
            thread::spawn(move || {
                let mut boxes: Vec<RemBox<[u64; 64]>> = (0..8192u64)
                    .map(|i| RemBox::new_in([t << 32 | i; 64], &rt))
                    .collect();
                for round in 1..=3u64 {
                    let mut scope = Scope::new();
                    for (i, b) in boxes.iter_mut().enumerate() {
                        let v = b.deref_mut(&scope);
                        assert_eq!(
                            v[63],
                            (t << 32 | i as u64) + round - 1,
                            "thread {t} object {i}"
                        );
                        for x in v.iter_mut() {
                            *x += 1;
                        }
                        scope.renew();
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let s = rt.stats();
    assert!(s.fetches > 0 && s.write_backs > 0, "{s:?}");
    assert_eq!(s.backend_errors, 0, "{s:?}");
}
