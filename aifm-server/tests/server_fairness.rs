//! One client's abuse (floods of pipelined requests, replies it may not have, batches beyond
//! its quota, construct storms) against another client's ordinary work on the same server.
//!
//! The test checks that the other client is served correctly and completely while the abuse
//! goes on (no starvation, no lost or wrong answers); it times nothing. The latency figure
//! (the other client's median round trip alone and under abuse) is measured by hand:
//!
//! ```text
//! cargo test --release -p aifm-server --test server_fairness -- --ignored --nocapture
//! ```

mod common;

use aifm_core::backend::{Backend, OBJECT_STORE, OBJECT_STORE_DEVICE};
use aifm_core::wire::{Blob, Op};
use common::{Raw, Said, ServerProc};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The server both clients use: small quotas and frames, so every abuse hits a limit.
fn server() -> ServerProc {
    ServerProc::start(&["--client-quota", "8MiB", "--max-frame", "1MiB"])
}

/// Runs abuse `kind` on its own connection until `stop`; counts the requests it sent.
fn abuse(addr: String, kind: u8, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) {
    let mut raw = Raw::login(&addr);
    let big = vec![9u8; 512 << 10];
    raw.put(0, b"big", &big);
    let mut id = 1u64;
    while !stop.load(Ordering::Relaxed) {
        // A burst of 64 pipelined requests, then all their answers.
        for _ in 0..64 {
            id += 1;
            let keys = vec![Blob(b"big"); 4000];
            let value = vec![1u8; 200 << 10];
            let wkeys: Vec<[u8; 8]> = (0..4).map(|j| (id * 4 + j).to_le_bytes()).collect();
            let items = wkeys
                .iter()
                .map(|k| (Blob(&k[..]), Blob(&value[..])))
                .collect();
            let op = match kind {
                0 => Op::ReadMany {
                    ds: OBJECT_STORE,
                    keys,
                },
                1 => Op::WriteMany {
                    ds: OBJECT_STORE,
                    items,
                },
                2 => Op::Construct {
                    ds: (id % 100_000) as u32 + 1,
                    device: OBJECT_STORE_DEVICE,
                    params: Blob(b""),
                },
                _ => Op::Ping,
            };
            raw.send_op(id, &op);
        }
        for _ in 0..64 {
            match raw.recv() {
                Said::Ok(..) | Said::Err(..) => {}
                other => panic!("abuser {kind} got {other:?}"),
            }
        }
        sent.fetch_add(64, Ordering::Relaxed);
    }
}

/// Starts every kind of abuse on its own connection.
fn start_abuse(addr: &str) -> (Arc<AtomicBool>, Arc<AtomicU64>, Vec<thread::JoinHandle<()>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let threads = (0..4u8)
        .map(|kind| {
            let (addr, stop, sent) = (addr.to_string(), stop.clone(), sent.clone());
            thread::spawn(move || abuse(addr, kind, stop, sent))
        })
        .collect();
    (stop, sent, threads)
}

/// The other client's work: `n` writes and reads of its own objects, each checked; returns
/// each round trip's duration.
fn ordinary_work(far: &dyn Backend, n: u32) -> Vec<Duration> {
    (0..n)
        .map(|i| {
            let key = i.to_le_bytes();
            let value = vec![i as u8; 1024];
            let t = Instant::now();
            far.write(OBJECT_STORE, &key, &value).unwrap();
            assert_eq!(far.read(OBJECT_STORE, &key).unwrap().unwrap(), value);
            t.elapsed()
        })
        .collect()
}

#[test]
fn another_clients_abuse_does_not_starve_or_corrupt_a_client() {
    let server = server();
    let far = server.client();
    let (stop, sent, threads) = start_abuse(&server.addr);
    ordinary_work(&far, 2000);
    assert_eq!(far.stored_bytes(), 2000 * (4 + 1024));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    assert!(sent.load(Ordering::Relaxed) > 0, "the abuse ran");
}

fn median_us(d: Vec<Duration>) -> f64 {
    let mut us: Vec<f64> = d.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    aifm_collections::testing::median(&mut us)
}

/// The figure: the other client's median write+read round trip alone, then under abuse.
#[test]
#[ignore = "a figure, measured by hand"]
fn figure_latency_under_abuse() {
    let server = server();
    let far = server.client();
    ordinary_work(&far, 2000); // warm up
    let alone = median_us(ordinary_work(&far, 5000));
    let (stop, sent, threads) = start_abuse(&server.addr);
    thread::sleep(Duration::from_millis(200));
    let abused = median_us(ordinary_work(&far, 5000));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    println!(
        "median write+read: alone {alone:.1} us, under abuse {abused:.1} us ({:.2}x); abusers sent {} requests",
        abused / alone,
        sent.load(Ordering::Relaxed)
    );
}
