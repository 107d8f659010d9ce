//! Scans against the wire and against memcpy, in one run: the yardsticks of far-memory
//! streaming. Not a criterion benchmark: each figure is a whole scan, repeated, and reported
//! as medians (and ratios of medians) in one markdown table.
//!
//! ```text
//! cargo bench --bench scan             # 256 MiB, medians of 3
//! cargo bench --bench scan -- --quick  # 64 MiB, one repeat
//! cargo bench --bench scan -- --quick --profile embedded   # one scan 30 times, for `perf`
//! ```
//!
//! 1. **Raw stream** (the wire's yardstick): a plain TCP sender on loopback writes the
//!    vector's bytes in chunks of the vector's chunk size (4 KiB) to a reader that reads each
//!    chunk into one buffer and sums its words. No request, no framing: the most a
//!    sequential scan over this socket can carry.
//! 2. **`RemVec<u64>` over a loopback `aifm-server`, 5 % local**: the same bytes, everything
//!    evacuated first; `iter_nt().fold` (the in-place path `sum`, `for_each`… take), the
//!    borrowing `chunks_nt()` walk, and a `next`-driven `for` loop. Each is reported as a
//!    fraction of the raw stream.
//! 3. **Embedded store, 5 % local**, against the **memcpy bound**: a `Vec<u64>` scan that
//!    copies each 4 KiB chunk once into a buffer and sums the buffer (what a fetch from an
//!    in-process store must at least do).
//!
//! The prefetcher's figures of the scans (issued, useful, window) follow the table.

mod common;
use common::server;

use aifm::collections::RemVec;
use aifm::{Runtime, Stats};
use aifm_collections::testing::median;
use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

/// Bytes per chunk of a `RemVec<u64>` (and per write of the raw stream).
const CHUNK: usize = 4096;

fn sum_words(bytes: &[u8]) -> u64 {
    bytes.chunks_exact(8).fold(0u64, |a, w| {
        a.wrapping_add(u64::from_le_bytes(w.try_into().unwrap()))
    })
}

/// Wall seconds of the raw stream: a sender thread writes `bytes` in `CHUNK` pieces, the
/// reader reads each piece into one buffer and sums it. The sum is checked.
fn raw_stream(bytes: &[u8], expected: u64) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let (mut tx, _) = listener.accept().unwrap();
            tx.set_nodelay(true).unwrap();
            for piece in bytes.chunks(CHUNK) {
                tx.write_all(piece).unwrap();
            }
        });
        let mut rx = TcpStream::connect(addr).unwrap();
        let mut buf = [0u8; CHUNK];
        let total = bytes.len();
        let t = Instant::now();
        let mut sum = 0u64;
        let mut got = 0;
        while got < total {
            let n = CHUNK.min(total - got);
            rx.read_exact(&mut buf[..n]).unwrap();
            sum = sum.wrapping_add(sum_words(&buf[..n]));
            got += n;
        }
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(sum, expected, "raw stream sum");
        secs
    })
}

/// Wall seconds of the memcpy bound: each `CHUNK` of `data` copied once into a buffer,
/// then summed from the buffer.
fn memcpy_bound(data: &[u64], expected: u64) -> f64 {
    let mut buf = vec![0u64; CHUNK / 8];
    let t = Instant::now();
    let mut sum = 0u64;
    for piece in data.chunks(CHUNK / 8) {
        let b = &mut buf[..piece.len()];
        b.copy_from_slice(black_box(piece));
        sum = black_box(b).iter().fold(sum, |a, &x| a.wrapping_add(x));
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(sum, expected, "memcpy-bound sum");
    secs
}

/// How a `RemVec` scan reads.
#[derive(Clone, Copy)]
enum How {
    /// `iter_nt().fold(...)`: each chunk read in place.
    Fold,
    /// `chunks_nt()`: a borrowed slice per chunk.
    Chunks,
    /// `for x in v.iter()`: `next` after `next`.
    Next,
}

impl How {
    fn name(self) -> &'static str {
        match self {
            How::Fold => "`iter_nt().fold`",
            How::Chunks => "`chunks_nt()`",
            How::Next => "`for x in iter()`",
        }
    }
}

/// Wall seconds of one scan of `v` (evacuate first: see `scan`).
fn far_scan(v: &RemVec<u64>, how: How, expected: u64) -> f64 {
    let t = Instant::now();
    let sum = match how {
        How::Fold => v.iter_nt().fold(0u64, |a, x| a.wrapping_add(x)),
        How::Chunks => v
            .chunks_nt()
            .fold(0u64, |a, c| c.iter().fold(a, |a, &x| a.wrapping_add(x))),
        How::Next => {
            let mut a = 0u64;
            for x in v.iter() {
                a = a.wrapping_add(x);
            }
            a
        }
    };
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(sum, expected, "far scan sum");
    secs
}

/// CPU time of this process so far, all threads (user + system), in seconds. On a loaded
/// machine the CPU a scan costs (its own threads, the runtime's helpers and evacuator, and the
/// in-process server or sender) is a steadier figure than its wall time.
fn cpu_seconds() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec; the clock id is a constant Linux knows.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    assert_eq!(r, 0, "clock_gettime");
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// A scan's wall rate (bytes/s) and CPU cost (CPU-ns per 4 KiB chunk, all threads).
#[derive(Clone, Copy)]
struct Rate {
    bytes_per_sec: f64,
    cpu_ns_per_chunk: f64,
}

/// Runs `f` (which scans `bytes` and returns its wall seconds) and measures it.
fn measure(bytes: usize, f: impl FnOnce() -> f64) -> Rate {
    let cpu = cpu_seconds();
    let secs = f();
    Rate {
        bytes_per_sec: bytes as f64 / secs,
        cpu_ns_per_chunk: (cpu_seconds() - cpu) * 1e9 / (bytes / CHUNK) as f64,
    }
}

/// Medians of each figure.
fn medians(rs: &[Rate]) -> Rate {
    Rate {
        bytes_per_sec: median(&mut rs.iter().map(|r| r.bytes_per_sec).collect::<Vec<_>>()),
        cpu_ns_per_chunk: median(&mut rs.iter().map(|r| r.cpu_ns_per_chunk).collect::<Vec<_>>()),
    }
}

/// One scan of `v`, everything that can go evacuated first (not measured).
fn scan(v: &RemVec<u64>, how: How, expected: u64) -> Rate {
    v.runtime().evacuate_now();
    measure(v.len() * 8, || far_scan(v, how, expected))
}

fn filled(rt: &Runtime, data: &[u64]) -> RemVec<u64> {
    let mut v = RemVec::new_in(rt);
    v.extend(data.iter().copied());
    v
}

fn gbps(x: f64) -> String {
    format!("{:.2} GB/s", x / 1e9)
}

fn prefetch_line(name: &str, s: &Stats) {
    println!(
        "| {name} | {} | {} | {} |",
        s.prefetch_issued, s.prefetch_useful, s.fetches
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (mib, repeats) = if quick { (64, 1) } else { (256, 3) };
    let n = (mib << 20) / 8;
    let data: Vec<u64> = (0..n as u64)
        .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 8)
        .collect();
    let expected = data.iter().fold(0u64, |a, &x| a.wrapping_add(x));
    let bytes: Vec<u8> = data.iter().flat_map(|w| w.to_le_bytes()).collect();
    let local = (mib << 20) / 20;

    let server = server();
    let tcp = Runtime::builder()
        .local_memory(local)
        .server(server.addr().to_string())
        .build()
        .unwrap();
    let far = filled(&tcp, &data);
    let embedded = Runtime::builder().local_memory(local).build().unwrap();
    let emb = filled(&embedded, &data);

    // `--profile tcp|embedded`: only that store's fold scan, 30 times (to run under `perf`).
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--profile") {
        let v = if args.get(i + 1).map(String::as_str) == Some("tcp") {
            &far
        } else {
            &emb
        };
        let rs: Vec<Rate> = (0..30).map(|_| scan(v, How::Fold, expected)).collect();
        let r = medians(&rs);
        println!(
            "median {}, {:.0} CPU-ns (all threads) per 4 KiB chunk",
            gbps(r.bytes_per_sec),
            r.cpu_ns_per_chunk
        );
        return;
    }

    // Interleaved rounds: every figure of a round is taken under the same machine load.
    let hows = [How::Fold, How::Chunks, How::Next];
    let total = data.len() * 8;
    let mut raw = Vec::new();
    let mut tcp_rates: Vec<Vec<Rate>> = vec![Vec::new(); hows.len()];
    let mut copy = Vec::new();
    let mut emb_rates: Vec<Vec<Rate>> = vec![Vec::new(); hows.len()];
    for _ in 0..repeats {
        raw.push(measure(total, || raw_stream(&bytes, expected)));
        for (i, &how) in hows.iter().enumerate() {
            tcp_rates[i].push(scan(&far, how, expected));
        }
        copy.push(measure(total, || memcpy_bound(&data, expected)));
        for (i, &how) in hows.iter().enumerate() {
            emb_rates[i].push(scan(&emb, how, expected));
        }
    }
    let raw = medians(&raw);
    let copy = medians(&copy);

    println!(
        "# Scans of a {mib} MiB RemVec<u64>, 5 % local ({}, medians of {repeats})\n",
        if quick { "quick" } else { "full" }
    );
    println!(
        "Rates are wall time; CPU is the process's CPU time (every thread: the scan, the \
         runtime's helpers and evacuator, the in-process server or sender) per 4 KiB chunk. \
         Ratios are speeds relative to the yardstick: by wall time, and by CPU cost (the \
         yardstick's CPU per chunk over this scan's).\n"
    );
    println!("| scan | rate | CPU per chunk | yardstick | ratio (wall) | ratio (CPU) |");
    println!("|---|---:|---:|---|---:|---:|");
    let row = |name: &str, r: Rate, base: Option<(&str, Rate)>| {
        let (yard, wall, cpu) = match base {
            Some((y, b)) => (
                y.to_string(),
                format!("**{:.2}x**", r.bytes_per_sec / b.bytes_per_sec),
                format!("{:.2}x", b.cpu_ns_per_chunk / r.cpu_ns_per_chunk),
            ),
            None => ("–".into(), "1.00x".into(), "1.00x".into()),
        };
        println!(
            "| {name} | {} | {:.0} ns | {yard} | {wall} | {cpu} |",
            gbps(r.bytes_per_sec),
            r.cpu_ns_per_chunk
        );
    };
    row("raw TCP stream, 4 KiB reads, summed", raw, None);
    for (i, how) in hows.iter().enumerate() {
        let name = format!("loopback `aifm-server`, {}", how.name());
        row(&name, medians(&tcp_rates[i]), Some(("raw stream", raw)));
    }
    row(
        "`Vec<u64>`, each 4 KiB chunk copied once, summed",
        copy,
        None,
    );
    for (i, how) in hows.iter().enumerate() {
        let name = format!("embedded store, {}", how.name());
        row(&name, medians(&emb_rates[i]), Some(("memcpy bound", copy)));
    }
    println!("\n| runtime | prefetch issued | useful | fetches |");
    println!("|---|---:|---:|---:|");
    prefetch_line("loopback server", &tcp.stats());
    prefetch_line("embedded", &embedded.stats());
    drop((far, emb));
    server.stop();
}
