//! Transport benchmark: a remote fetch through the TCP backend and through the runtime,
//! against a raw TCP ping-pong of the same sizes, in the same run (the ratio to the bare
//! sockets is the figure; see `docs/TRANSPORT.md`).
//!
//! * `fetch/<size>/raw-poll`: a bare socket ping-pong (16-byte request, `<size>` reply),
//!   both ends busy-polling non-blocking sockets: the wire's floor on this machine.
//! * `fetch/<size>/raw-poll-yield`: the same, yielding the core between polls (what the
//!   transport itself does; on a loaded two-core machine the pure busy-poll above can be
//!   much slower than this, see `aifm_core::backend::tcp`).
//! * `fetch/<size>/raw-blocking`: the same with both ends blocking in `read` (one thread
//!   wake-up per message on each side).
//! * `fetch/<size>/tcp-backend`: `TcpBackend::read` of a `<size>` object from an in-process
//!   `aifm-server` (one request in flight).
//! * `fetch/<size>/runtime`: dereferencing `RemBox`es that are all in far memory, through a
//!   runtime on the same server (fetch plus the runtime's own work: allocation, decoding,
//!   publication, and evicting what it fetched; measured per dereference).
//! * `throughput/*`: many requests in flight: a window of reads sent in one write
//!   (`start_reads`), the same window sent one request per write (`start_read`), one batched
//!   request (`read_many`), and two threads issuing blocking reads.
//!
//! Run with `cargo bench --bench transport`; `docs/TRANSPORT.md` records the figures.

mod common;
use common::server;

use aifm_core::backend::tcp::{TcpBackend, TcpBuilder};
use aifm_core::backend::{Backend, OBJECT_STORE};
use aifm_core::{RemBox, Runtime, Scope};
use aifm_server::RunningServer;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const SIZES: [usize; 2] = [64, 4096];
const REQUEST: usize = 16;

fn client(server: &RunningServer) -> TcpBackend {
    TcpBuilder::new(server.addr().to_string())
        .connect()
        .unwrap()
}

/// How a raw ping-pong end waits for the next message.
#[derive(Clone, Copy, PartialEq)]
enum Wait {
    /// Busy-polls a non-blocking socket (pause instruction between tries).
    Spin,
    /// Busy-polls a non-blocking socket, yielding the core between tries.
    Yield,
    /// Blocks in `read`.
    Block,
}

impl Wait {
    fn name(self) -> &'static str {
        match self {
            Wait::Spin => "raw-poll",
            Wait::Yield => "raw-poll-yield",
            Wait::Block => "raw-blocking",
        }
    }
}

/// Reads exactly `buf.len()` bytes, waiting as `wait` says.
fn read_exact(s: &mut TcpStream, buf: &mut [u8], wait: Wait) -> bool {
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) => return false,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock && wait == Wait::Spin => {
                std::hint::spin_loop()
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::yield_now(),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

fn write_all(s: &mut TcpStream, mut buf: &[u8]) {
    while !buf.is_empty() {
        match s.write(buf) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) => panic!("{e}"),
        }
    }
}

/// A raw echo pair: the server thread answers each 16-byte request with `size` bytes.
fn raw_pair(size: usize, wait: Wait) -> (TcpStream, thread::JoinHandle<()>) {
    let poll = wait != Wait::Block;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let echo = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_nodelay(true).unwrap();
        s.set_nonblocking(poll).unwrap();
        let reply = vec![0x5a; size];
        let mut req = [0u8; REQUEST];
        while read_exact(&mut s, &mut req, wait) {
            write_all(&mut s, &reply);
        }
    });
    let c = TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    c.set_nonblocking(poll).unwrap();
    (c, echo)
}

fn fetch(c: &mut Criterion) {
    let srv = server();
    let far = client(&srv);
    let mut g = c.benchmark_group("fetch");
    g.sample_size(40).measurement_time(Duration::from_secs(3));
    for size in SIZES {
        let key = (size as u64).to_le_bytes();
        far.write(OBJECT_STORE, &key, &vec![0xa5; size]).unwrap();
        for wait in [Wait::Spin, Wait::Yield, Wait::Block] {
            g.bench_function(BenchmarkId::new(format!("{size}B"), wait.name()), |b| {
                let (mut s, echo) = raw_pair(size, wait);
                let mut reply = vec![0u8; size];
                let req = [1u8; REQUEST];
                b.iter(|| {
                    write_all(&mut s, &req);
                    assert!(read_exact(&mut s, &mut reply, wait));
                });
                drop(s);
                echo.join().unwrap();
            });
        }
        g.bench_function(BenchmarkId::new(format!("{size}B"), "tcp-backend"), |b| {
            b.iter(|| {
                let v = far.read(OBJECT_STORE, &key).unwrap().unwrap();
                assert_eq!(v.len(), size);
            })
        });
        runtime_fetch(&mut g, &srv, size);
    }
    g.finish();
}

/// Dereferences `RemBox`es of `size` bytes that were all written out to the server.
fn runtime_fetch(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    srv: &RunningServer,
    size: usize,
) {
    let rt = Runtime::builder()
        .server(srv.addr().to_string())
        .local_memory(4 << 20)
        .build()
        .unwrap();
    // 64 MiB of objects for 4 MiB of local memory: nearly every dereference fetches.
    let n = (64 << 20) / size;
    macro_rules! run {
        ($t:ty, $fill:expr) => {{
            let boxes: Vec<RemBox<$t>> = (0..n).map(|i| RemBox::new_in($fill(i), &rt)).collect();
            // A seeded xorshift walk: no stride for a prefetcher to follow.
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            let (mut derefs, before) = (0u64, rt.stats().fetches);
            g.bench_function(BenchmarkId::new(format!("{size}B"), "runtime"), |b| {
                b.iter_custom(|iters| {
                    let mut scope = Scope::new();
                    let t = Instant::now();
                    for _ in 0..iters {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let v = boxes[(x % n as u64) as usize].deref(&scope);
                        std::hint::black_box(v[0]);
                        derefs += 1;
                        scope.renew();
                    }
                    t.elapsed()
                })
            });
            let s = rt.stats();
            eprintln!(
                "runtime {size}B: {derefs} derefs, {} fetches, {} write-backs, {} backend errors",
                s.fetches - before,
                s.write_backs,
                s.backend_errors
            );
        }};
    }
    match size {
        64 => run!([u64; 8], |i: usize| [i as u64; 8]),
        _ => run!([u64; 512], |i: usize| [i as u64; 512]),
    }
}

fn throughput(c: &mut Criterion) {
    let srv = server();
    let far = Arc::new(client(&srv));
    let mut g = c.benchmark_group("throughput");
    g.sample_size(30).measurement_time(Duration::from_secs(3));
    for size in SIZES {
        let keys: Vec<[u8; 8]> = (0..256u64)
            .map(|i| (i << 16 | size as u64).to_le_bytes())
            .collect();
        for k in &keys {
            far.write(OBJECT_STORE, k, &vec![0x3c; size]).unwrap();
        }
        let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        for window in [16usize, 64] {
            g.throughput(Throughput::Elements(window as u64));
            g.bench_function(
                BenchmarkId::new(format!("{size}B"), format!("start_reads-{window}")),
                |b| {
                    b.iter(|| {
                        for p in far.start_reads(OBJECT_STORE, &refs[..window]).unwrap() {
                            assert_eq!(p.wait().unwrap().unwrap().len(), size);
                        }
                    })
                },
            );
        }
        g.throughput(Throughput::Elements(64));
        g.bench_function(
            BenchmarkId::new(format!("{size}B"), "start_read-x64"),
            |b| {
                b.iter(|| {
                    let pending: Vec<_> = refs[..64]
                        .iter()
                        .map(|k| far.start_read(OBJECT_STORE, k).unwrap())
                        .collect();
                    for p in pending {
                        assert_eq!(p.wait().unwrap().unwrap().len(), size);
                    }
                })
            },
        );
        g.throughput(Throughput::Elements(64));
        g.bench_function(BenchmarkId::new(format!("{size}B"), "read_many-64"), |b| {
            b.iter(|| {
                let vs = far.read_many(OBJECT_STORE, &refs[..64]).unwrap();
                assert_eq!(vs.len(), 64);
            })
        });
        g.throughput(Throughput::Elements(2 * 64));
        g.bench_function(
            BenchmarkId::new(format!("{size}B"), "2-threads-blocking"),
            |b| {
                b.iter(|| {
                    thread::scope(|s| {
                        for t in 0..2 {
                            let (far, keys) = (&far, &keys);
                            s.spawn(move || {
                                for k in &keys[t * 64..t * 64 + 64] {
                                    assert_eq!(
                                        far.read(OBJECT_STORE, k).unwrap().unwrap().len(),
                                        size
                                    );
                                }
                            });
                        }
                    })
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, fetch, throughput);
criterion_main!(benches);
