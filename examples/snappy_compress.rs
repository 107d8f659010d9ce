//! Snappy over a far array: compress a large buffer held in far memory as 32 KiB blocks,
//! then decompress it again and check it (the original's Fig. 11 workload).
//!
//! The access is a sequential, prefetchable scan, so far memory should come close to
//! all-local. Throughput is input MiB compressed+decompressed per second.
//!
//! ```text
//! cargo run --release --example snappy_compress -- --help
//! cargo run --release --example snappy_compress -- --local-mib 32 --scale 1
//! ```

#[path = "common/mod.rs"]
mod common;

use aifm::collections::RemVec;
use clap::Parser;
use common::{report, Common, Outcome, Timer, XorShift};

const BLOCK: usize = 32 << 10;
type Block = [u8; BLOCK];

/// Compress and decompress a buffer held in a far array of 32 KiB blocks.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    common: Common,
    /// Input size in MiB at scale 1.0.
    #[arg(long, default_value_t = 256)]
    data_mib: usize,
}

/// Text-like, compressible but not trivial, deterministic from the seed.
fn fill_block(rng: &mut XorShift, out: &mut Block) {
    const WORDS: [&str; 16] = [
        "far ",
        "memory ",
        "object ",
        "region ",
        "scope ",
        "pointer ",
        "evacuate ",
        "fetch ",
        "remote ",
        "local ",
        "prefetch ",
        "hot ",
        "cold ",
        "chunk ",
        "server ",
        "rust ",
    ];
    let mut i = 0;
    while i < BLOCK {
        let r = rng.next_u64();
        let w: &[u8] = if r % 5 == 0 {
            &r.to_le_bytes()[..3]
        } else {
            WORDS[(r >> 8) as usize % 16].as_bytes()
        };
        let n = w.len().min(BLOCK - i);
        out[i..i + n].copy_from_slice(&w[..n]);
        i += n;
    }
}

/// Compresses every block, keeps the compressed blocks, decompresses them and checks a hash
/// of the result against a hash of the input. Returns (compressed bytes, checksum ok).
fn run(blocks: impl Fn(&mut dyn FnMut(&Block))) -> (u64, bool) {
    let mut enc = snap::raw::Encoder::new();
    let mut dec = snap::raw::Decoder::new();
    let mut compressed: Vec<Vec<u8>> = Vec::new();
    let mut input_hash = 0u64;
    blocks(&mut |b: &Block| {
        input_hash = input_hash.rotate_left(7) ^ fxhash(b);
        compressed.push(enc.compress_vec(b).expect("snappy compress"));
    });
    let mut out = vec![0u8; BLOCK];
    let mut output_hash = 0u64;
    for c in &compressed {
        let n = dec.decompress(c, &mut out).expect("snappy decompress");
        output_hash = output_hash.rotate_left(7) ^ fxhash(&out[..n]);
    }
    (
        compressed.iter().map(|c| c.len() as u64).sum(),
        input_hash == output_hash,
    )
}

fn fxhash(bytes: &[u8]) -> u64 {
    bytes.chunks(8).fold(0u64, |h, c| {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(0x517c_c1b7_2722_0a95)
    })
}

fn main() {
    let args = Args::parse();
    let c = &args.common;
    let n = ((args.data_mib as f64 * c.scale) as usize * (1 << 20) / BLOCK).max(1);
    let data_mib = (n * BLOCK) as f64 / (1 << 20) as f64;
    let mut rng = XorShift::new(c.seed | 1);
    let bar = c.progress(n as u64, "loading");
    let mut block = Box::new([0u8; BLOCK]);

    let (rt, compressed, ok, seconds);
    let _far_data: Option<RemVec<Block>>; // alive until the report, so its statistics are current
    if c.all_local {
        let mut data: Vec<Box<Block>> = Vec::with_capacity(n);
        for _ in 0..n {
            fill_block(&mut rng, &mut block);
            data.push(block.clone());
            bar.inc(1);
        }
        bar.finish_and_clear();
        let t = Timer::start();
        (compressed, ok) = run(|f| data.iter().for_each(|b| f(b)));
        seconds = t.seconds();
        rt = None;
        _far_data = None;
    } else {
        let runtime = c.runtime();
        let mut data: RemVec<Block> = RemVec::with_chunk_bytes_in(BLOCK, &runtime);
        for _ in 0..n {
            fill_block(&mut rng, &mut block);
            data.push(*block);
            bar.inc(1);
        }
        bar.finish_and_clear();
        let t = Timer::start();
        // A one-time pass: nontemporal, so it does not push anything hot out, and each
        // chunk borrowed in place (no copy) while a window of chunks is fetched ahead.
        (compressed, ok) = run(|f| {
            for blocks in data.chunks_nt() {
                blocks.iter().for_each(&mut *f);
            }
        });
        seconds = t.seconds();
        rt = Some(runtime);
        _far_data = Some(data);
    }
    assert!(ok, "decompressed data differs from the input");
    report(
        c,
        rt.as_ref(),
        Outcome {
            workload: "snappy_compress",
            data_mib,
            ops: data_mib * 2.0,
            seconds,
            unit: "MiB/s",
            extra: serde_json::json!({ "compressed_mib": compressed as f64 / (1 << 20) as f64, "blocks": n }),
        },
    );
}
