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

use aifm::collections::RemVec;
use aifm::{Runtime, Stats};
use aifm_server::{Config, RunningServer, Server};
use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

/// Bytes per chunk of a `RemVec<u64>` (and per write of the raw stream).
const CHUNK: usize = 4096;

fn server() -> RunningServer {
    let config = Config {
        listen: "127.0.0.1:0".into(),
        stats_interval: None,
        ..Config::default()
    };
    Server::bind(config).unwrap().spawn().unwrap()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn sum_words(bytes: &[u8]) -> u64 {
    bytes.chunks_exact(8).fold(0u64, |a, w| {
        a.wrapping_add(u64::from_le_bytes(w.try_into().unwrap()))
    })
}

/// Bytes per second of the raw stream: a sender thread writes `bytes` in `CHUNK` pieces, the
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
        total as f64 / secs
    })
}

/// Bytes per second of the memcpy bound: each `CHUNK` of `data` copied once into a buffer,
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
    (data.len() * 8) as f64 / secs
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

/// Bytes per second of one scan of `v` after evacuating everything that can go.
fn far_scan(v: &RemVec<u64>, how: How, expected: u64) -> f64 {
    v.runtime().evacuate_now();
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
    (v.len() * 8) as f64 / secs
}

/// CPU time of this process so far, all threads (user + system), from `/proc/self/stat`
/// (clock ticks of 10 ms: only meaningful over many scans). Under a loaded machine it is a
/// steadier figure of the work a scan costs than its wall time.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // Fields 14 and 15 of the line (utime, stime) are the 12th and 13th after the `)`.
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
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
        let cpu = cpu_seconds();
        let rates: Vec<f64> = (0..30).map(|_| far_scan(v, How::Fold, expected)).collect();
        let chunks = 30.0 * (n * 8 / CHUNK) as f64;
        println!(
            "median {}, {:.0} ns of CPU (all threads) per 4 KiB chunk",
            gbps(median(rates)),
            (cpu_seconds() - cpu) * 1e9 / chunks
        );
        return;
    }

    // Interleaved rounds: every figure of a round is taken under the same machine load.
    let hows = [How::Fold, How::Chunks, How::Next];
    let mut raw = Vec::new();
    let mut tcp_rates: Vec<Vec<f64>> = vec![Vec::new(); hows.len()];
    let mut copy = Vec::new();
    let mut emb_rates: Vec<Vec<f64>> = vec![Vec::new(); hows.len()];
    for _ in 0..repeats {
        raw.push(raw_stream(&bytes, expected));
        for (i, &how) in hows.iter().enumerate() {
            tcp_rates[i].push(far_scan(&far, how, expected));
        }
        copy.push(memcpy_bound(&data, expected));
        for (i, &how) in hows.iter().enumerate() {
            emb_rates[i].push(far_scan(&emb, how, expected));
        }
    }
    let raw = median(raw);
    let copy = median(copy);

    println!(
        "# Scans of a {mib} MiB RemVec<u64>, 5 % local ({}, medians of {repeats})\n",
        if quick { "quick" } else { "full" }
    );
    println!("| scan | rate | yardstick | ratio |");
    println!("|---|---:|---:|---:|");
    println!("| raw TCP stream, 4 KiB reads, summed | {} | – | 1.00x |", gbps(raw));
    for (i, how) in hows.iter().enumerate() {
        let r = median(tcp_rates[i].clone());
        println!(
            "| loopback `aifm-server`, {} | {} | raw stream | **{:.2}x** |",
            how.name(),
            gbps(r),
            r / raw
        );
    }
    println!(
        "| `Vec<u64>`, each 4 KiB chunk copied once, summed | {} | – | 1.00x |",
        gbps(copy)
    );
    for (i, how) in hows.iter().enumerate() {
        let r = median(emb_rates[i].clone());
        println!(
            "| embedded store, {} | {} | memcpy bound | **{:.2}x** |",
            how.name(),
            gbps(r),
            r / copy
        );
    }
    println!("\n| runtime | prefetch issued | useful | fetches |");
    println!("|---|---:|---:|---:|");
    prefetch_line("loopback server", &tcp.stats());
    prefetch_line("embedded", &embedded.stats());
    drop((far, emb));
    server.stop();
}
