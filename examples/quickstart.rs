//! Quickstart: more data than local memory, on the default runtime.
//!
//! Allocates 64 MiB of objects against a 16 MiB local budget (unless `AIFM_LOCAL_MEMORY` says
//! otherwise), reads every one back, checks it, and prints the runtime's statistics. With
//! `AIFM_SERVER=host:port` the far memory is a memory server instead of the embedded store.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```

use aifm::{RemBox, Runtime, Scope};

const OBJECT_WORDS: usize = 512; // 4 KiB objects
const TOTAL_BYTES: usize = 64 << 20;

fn main() {
    if std::env::var_os("AIFM_LOCAL_MEMORY").is_none() {
        std::env::set_var("AIFM_LOCAL_MEMORY", "16MiB");
    }
    let rt = Runtime::global();
    let n = TOTAL_BYTES / (OBJECT_WORDS * 8);
    println!(
        "allocating {n} objects of 4 KiB ({} MiB) on {:?}",
        TOTAL_BYTES >> 20,
        rt
    );

    let objects: Vec<RemBox<[u64; OBJECT_WORDS]>> = (0..n)
        .map(|i| {
            let mut v = [0u64; OBJECT_WORDS];
            v.iter_mut()
                .enumerate()
                .for_each(|(j, w)| *w = (i * OBJECT_WORDS + j) as u64);
            RemBox::new(v)
        })
        .collect();

    let mut scope = Scope::new();
    let mut sum = 0u64;
    for (i, obj) in objects.iter().enumerate() {
        let v = obj.deref(&scope);
        assert_eq!(
            v[0],
            (i * OBJECT_WORDS) as u64,
            "object {i} came back wrong"
        );
        assert_eq!(
            v[OBJECT_WORDS - 1],
            (i * OBJECT_WORDS + OBJECT_WORDS - 1) as u64
        );
        sum = sum.wrapping_add(v.iter().sum::<u64>());
        if i % 64 == 63 {
            scope.renew(); // let the evacuator past
        }
    }
    drop(scope);
    let words = (n * OBJECT_WORDS) as u64;
    assert_eq!(sum, words * (words - 1) / 2, "checksum");

    let stats = rt.stats();
    println!("all {n} objects read back and checked (checksum {sum})");
    println!("{stats}");
    assert!(
        stats.write_backs > 0 && stats.fetches > 0,
        "expected evacuations and fetches"
    );
}
