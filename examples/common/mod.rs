//! What every workload example shares: the command line, the runtime, progress bars and the
//! one-line JSON report the evaluation harness (`aifm-eval`) reads.
//!
//! Contract: each example takes `--local-mib`, `--backend embedded|HOST:PORT`, `--all-local`,
//! `--scale`, `--seed` and `--quiet` (the request-serving ones also `--inflight`, see
//! [`InFlight`]), and prints a JSON object as its last stdout line:
//! `{"workload", "system", "backend", "local_mib", "data_mib", "ops", "seconds",
//! "throughput", "unit", "stats", ...}`.
#![allow(dead_code)] // each example uses a different part

use aifm::{Runtime, Stats};
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Instant;

/// Flags common to every workload.
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// Local-memory budget for aifm-rs, in MiB.
    #[arg(long, default_value_t = 256)]
    pub local_mib: usize,
    /// Where far memory lives: `embedded` (in-process), a memory server's `HOST:PORT`,
    /// several servers `HOST:PORT,HOST:PORT,...` (objects replicated across them), or a Redis
    /// Cluster `redis://HOST:PORT,...` (built with `--features redis`).
    #[arg(long, default_value = "embedded")]
    pub backend: String,
    /// Replication factor with several servers (default 2).
    #[arg(long)]
    pub replicas: Option<usize>,
    /// Run the same program on std `Vec`/`HashMap` instead (the all-local baseline).
    #[arg(long)]
    pub all_local: bool,
    /// Data size relative to the default (1.0).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Seed for the data generator and the request stream.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// No progress bars or human summary, only the JSON line.
    #[arg(long)]
    pub quiet: bool,
}

/// The flag of the workloads that serve requests concurrently (`web_frontend`, `kv_cache`,
/// `object_sweep`); they report it as `"inflight"` in their JSON line.
#[derive(clap::Args, Debug, Clone)]
pub struct InFlight {
    /// Requests in flight per serving thread: each serving thread runs this many tasks on
    /// tokio's current-thread runtime, each serving one request at a time, so one task's
    /// misses overlap the others' work (the same executor code runs with `--all-local`).
    /// 1 runs the synchronous loop, no executor.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub inflight: u64,
}

impl Common {
    /// The runtime for the aifm-rs variant.
    pub fn runtime(&self) -> Runtime {
        let b = Runtime::builder().local_memory(self.local_mib << 20);
        let b = if self.backend == "embedded" {
            b
        } else {
            b.server(self.backend.clone())
        };
        let b = match self.replicas {
            Some(n) => b.replicas(n),
            None => b,
        };
        b.build().unwrap_or_else(|e| {
            eprintln!("cannot start the runtime: {e}");
            std::process::exit(2)
        })
    }

    /// `"aifm"` or `"all-local"`.
    pub fn system(&self) -> &'static str {
        if self.all_local {
            "all-local"
        } else {
            "aifm"
        }
    }

    /// A progress bar over `len` steps (hidden with `--quiet`).
    pub fn progress(&self, len: u64, what: &str) -> ProgressBar {
        if self.quiet {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len);
        bar.set_style(
            ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({eta})")
                .unwrap()
                .progress_chars("=> "),
        );
        bar.set_message(what.to_string());
        bar
    }
}

/// Runs `tasks` tasks made by `task(i)` on a tokio current-thread runtime on the calling
/// thread, and returns their outputs in order. The tasks are `spawn_local`ed, so they need not
/// be `Send`: everything stays on this thread, as the original's green threads stay on their
/// core.
pub fn run_tasks<F, Fut>(tasks: u64, task: F) -> Vec<Fut::Output>
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future + 'static,
    Fut::Output: 'static,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio current-thread runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let handles: Vec<_> = (0..tasks)
            .map(|i| tokio::task::spawn_local(task(i)))
            .collect();
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            out.push(h.await.expect("a request task panicked"));
        }
        out
    })
}

/// The share of `total` requests task `i` of `tasks` serves (the first ones take the
/// remainder), so that the shares add up to `total`.
pub fn share(total: u64, tasks: u64, i: u64) -> u64 {
    total / tasks + u64::from(i < total % tasks)
}

/// Measures one timed phase.
pub struct Timer(Instant);

impl Timer {
    pub fn start() -> Self {
        Timer(Instant::now())
    }
    pub fn seconds(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}

/// What a workload measured.
pub struct Outcome<'a> {
    pub workload: &'a str,
    pub data_mib: f64,
    pub ops: f64,
    pub seconds: f64,
    pub unit: &'a str,
    /// Workload-specific fields merged into the JSON line.
    pub extra: serde_json::Value,
}

/// Prints the human summary and the JSON line.
pub fn report(args: &Common, rt: Option<&Runtime>, outcome: Outcome<'_>) {
    let Outcome {
        workload,
        data_mib,
        ops,
        seconds,
        unit,
        extra,
    } = outcome;
    let stats: Option<Stats> = rt.map(Runtime::stats);
    let throughput = ops / seconds.max(1e-9);
    if !args.quiet {
        println!(
            "{workload} ({}, {}): {ops:.0} {unit_short} in {seconds:.3} s = {throughput:.1} {unit}",
            args.system(),
            if args.all_local {
                "std collections".to_string()
            } else {
                format!("{} MiB local, {}", args.local_mib, args.backend)
            },
            unit_short = unit.trim_end_matches("/s"),
        );
        if let Some(s) = &stats {
            println!("{s}");
        }
    }
    let stats_json = stats.map(|s| {
        serde_json::json!({
            "fetches": s.fetches, "fetched_bytes": s.fetched_bytes,
            "write_backs": s.write_backs, "written_bytes": s.written_bytes,
            "evacuation_rounds": s.evacuation_rounds, "local_bytes": s.local_bytes,
            "far_bytes": s.far_bytes, "prefetch_issued": s.prefetch_issued,
            "prefetch_useful": s.prefetch_useful, "over_budget_episodes": s.over_budget_episodes,
            "local_owned_bytes": s.local_owned_bytes, "budget_bytes": s.budget_bytes,
            // Live objects (headers and owned heap included) over the budget.
            "local_fill": s.local_total() as f64 / s.budget_bytes.max(1) as f64,
        })
    });
    let mut line = serde_json::json!({
        "workload": workload,
        "system": args.system(),
        "backend": if args.all_local { "none" } else if args.backend == "embedded" { "embedded" } else if args.backend.starts_with("redis://") { "redis" } else { "tcp" },
        "local_mib": if args.all_local { serde_json::Value::Null } else { args.local_mib.into() },
        "data_mib": data_mib,
        "ops": ops,
        "seconds": seconds,
        "throughput": throughput,
        "unit": unit,
        "seed": args.seed,
        "scale": args.scale,
        "stats": stats_json,
    });
    if let (Some(obj), serde_json::Value::Object(more)) = (line.as_object_mut(), extra) {
        obj.extend(more);
    }
    println!("{line}");
}

/// MiB a std `HashMap` (hashbrown) of `entries` pairs of `entry_bytes` occupies: buckets are
/// a power of two at most 7/8 full, each an entry plus one control byte. Examples report this
/// as (part of) their working set, so that budgets derived from it mean the same for every
/// system.
pub fn hashmap_mib(entries: u64, entry_bytes: u64) -> f64 {
    let buckets = (entries * 8 / 7).next_power_of_two();
    (buckets * (entry_bytes + 1)) as f64 / (1 << 20) as f64
}

/// The examples' seeded generator: the workspace's one
/// ([`aifm_collections::testing::XorShift`], whose stream does not depend on `rand`'s version)
/// with the draws the data generators need on top.
#[derive(Debug, Clone)]
pub struct XorShift {
    stream: aifm_collections::testing::XorShift,
}

impl XorShift {
    /// A stream starting from `seed` (0 is replaced by a fixed non-zero seed).
    pub fn new(seed: u64) -> XorShift {
        XorShift {
            stream: aifm_collections::testing::XorShift::new(seed),
        }
    }
    /// The next number of the stream.
    pub fn next_u64(&mut self) -> u64 {
        self.stream.next_u64()
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
