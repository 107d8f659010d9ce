//! `aifm-eval`: runs one workload example across a sweep of local-memory budgets on every
//! system the project compares, and writes CSV, a PNG chart and a markdown table of ratios.
//!
//! ```text
//! aifm-eval --workload kv_cache [--fractions 0.05,0.1,0.25,0.5,1.0]
//!           [--systems all-local,aifm-embedded,aifm-tcp,paging] [--repeats 3] [--scale X]
//!           [--inflight 1,8,64] [--paging-threads 1,4,16]
//!           [--out docs/results] [--tag NAME] [-- EXTRA ARGS FOR THE EXAMPLE]
//! ```
//!
//! `docs/EVALUATION.md` is the user's guide; this is the mechanism.
//!
//! # The example contract
//!
//! A workload is a cargo example of the facade package (`examples/NAME.rs`). The harness runs
//! the release binary `$CARGO_TARGET_DIR/release/examples/NAME` (`./target` when the variable
//! is unset) directly, after one `cargo build --release --example NAME`. Every example:
//!
//! * accepts `--local-mib N` (the far-memory runtime's local budget in MiB),
//!   `--backend embedded|HOST:PORT` (default `embedded`), `--all-local` (the same program on
//!   std `Vec`/`HashMap`, no far memory), `--scale X` (float, `1.0` = the default size),
//!   `--seed S` and `--quiet`;
//! * exits 0 on success, and prints as its **last stdout line** one JSON object:
//!   `{"workload":"kv_cache","system":"aifm"|"all-local","backend":"embedded"|"tcp",
//!   "local_mib":N,"data_mib":D,"ops":O,"seconds":T,"throughput":X,"unit":"ops/s",
//!   "stats":{...}}`. Extra fields are allowed (`variant`, e.g. `"offload"`, is copied into
//!   the CSV). `throughput` is what is compared; `data_mib` is the working set the
//!   fractions refer to; `stats` is copied verbatim into the CSV.
//!
//! Arguments after `--` go to every run of the example unchanged (e.g. `-- --no-offload`);
//! `--tag` keeps the result files of such variants apart.
//!
//! # The sweep
//!
//! 1. **Warm-up:** one `--all-local` run. Its `data_mib` is the working set `W` (else its peak
//!    RSS, from `wait4`'s `ru_maxrss`; `--working-set-mib` overrides both). Its peak RSS minus
//!    `data_mib` is the process's overhead `O` (code, allocator, bookkeeping). It is not
//!    counted in the medians.
//! 2. **all-local:** `--repeats` runs, no limit: the baseline every ratio is against.
//! 3. **For each fraction `f`**, budget `B = max(1, round(f × W))` MiB, and each system
//!    `--repeats` times:
//!    * `aifm-embedded`: `--local-mib B --backend embedded`;
//!    * `aifm-tcp`: a fresh `aifm-server --listen 127.0.0.1:0` (its first stdout line names the
//!      port), `--local-mib B --backend 127.0.0.1:PORT`, the server stopped after the run;
//!    * `aifm-tcp-2s`, `aifm-tcp-3s` (each object on one server) and `aifm-tcp-2s-r2`,
//!      `aifm-tcp-3s-r2` (replication 2): the same with two or three fresh servers,
//!      `--backend ADDR,ADDR[,ADDR] --replicas R`;
//!    * `paging`: `--all-local` inside a memory cgroup limited to `B + O` MiB, with a zram
//!      device as the only swap (see [`paging`]). The overhead is added so that both the
//!      far-memory runtime and the kernel get `B` MiB for the *data*: the runtime's budget
//!      does not cover the rest of its process either.
//!
//!    With `--inflight 1,8,64`, all-local and each aifm-rs system run once per value (the
//!    example's `--inflight N`); with `--paging-threads 1,4,16`, paging runs once per value
//!    (`--inflight 1 --threads N`). Each (system, level) is a series of its own.
//! 4. **Report:** medians of the repeats, ratios aifm/paging (the best paging level at each
//!    budget) and aifm/all-local (all-local at the same `--inflight`).
//!
//! A failing run (non-zero exit, no JSON, time limit) is recorded as such and the sweep goes
//! on; a system that cannot run here (paging without root or zram) is skipped with the reason
//! in the report. Ctrl-C stops the run in flight, tears everything down and still writes the
//! report of what was measured.

#![warn(missing_docs)]

mod chart;
mod markdown;
mod paging;
mod report;
mod run;
mod server;

use clap::Parser;
use report::{Context, Level, Row, System};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Measure a workload example on all-local, aifm-rs (embedded and over TCP) and kernel paging
/// across local-memory budgets; write CSV, a PNG chart and a markdown table of ratios.
#[derive(Debug, Parser)]
#[command(name = "aifm-eval", version)]
struct Args {
    /// The example to run (`examples/NAME.rs`), e.g. kv_cache, web_frontend, eval_probe.
    #[arg(long, value_name = "NAME")]
    workload: String,

    /// Local memory as fractions of the working set.
    #[arg(long, value_delimiter = ',', default_value = "0.05,0.1,0.25,0.5,1.0")]
    fractions: Vec<f64>,

    /// Systems to measure: all-local, aifm-embedded, aifm-tcp, paging; and for several
    /// servers aifm-tcp-2s, aifm-tcp-3s (no replication), aifm-tcp-2s-r2, aifm-tcp-3s-r2.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "all-local,aifm-embedded,aifm-tcp,paging",
        value_parser = System::parse
    )]
    systems: Vec<System>,

    /// Requests in flight per serving thread to sweep (`--inflight N` of the example) for
    /// all-local and the aifm-rs systems, e.g. `1,8,64`; none: the example's default.
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u16).range(1..))]
    inflight: Vec<u16>,

    /// Threads to sweep for paging (`--threads N --inflight 1`), e.g. `1,4,16`: the kernel
    /// cannot overlap faults inside one thread, so a user would add threads; none: the
    /// example's default.
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u16).range(1..))]
    paging_threads: Vec<u16>,

    /// Runs per (system, level, budget); the median is reported.
    #[arg(long, default_value_t = 3)]
    repeats: u32,

    /// Passed to the example as `--scale` (its default size when absent).
    #[arg(long)]
    scale: Option<f64>,

    /// Passed to the example as `--seed` (the same for every run).
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Directory for the CSV, PNG and markdown files.
    #[arg(long, default_value = "docs/results")]
    out: PathBuf,

    /// Suffix for the result files (`NAME-TAG.md`), to keep variants apart.
    #[arg(long)]
    tag: Option<String>,

    /// Working set in MiB the fractions refer to, instead of the warm-up's `data_mib`.
    #[arg(long, value_name = "MIB")]
    working_set_mib: Option<u64>,

    /// Do not run `cargo build`; use the binaries already in --bin-dir.
    #[arg(long)]
    no_build: bool,

    /// Directory holding `examples/NAME` and `aifm-server` (default: the release directory
    /// of $CARGO_TARGET_DIR, or of ./target).
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,

    /// Time limit of one run, in seconds; a run past it is killed and recorded as a timeout.
    #[arg(long, default_value_t = 1800)]
    timeout: u64,

    /// Show each command and the examples' own output.
    #[arg(short, long)]
    verbose: bool,

    /// Extra arguments for every run of the example.
    #[arg(last = true)]
    extra: Vec<String>,
}

fn main() {
    let args = Args::parse();
    match sweep(&args) {
        Ok(true) => {}
        Ok(false) => {
            eprintln!("aifm-eval: interrupted; the report holds the runs measured so far");
            std::process::exit(130);
        }
        Err(e) => {
            eprintln!("aifm-eval: {e}");
            std::process::exit(1);
        }
    }
}

/// The workspace root: the facade package is at the root of the workspace.
fn workspace() -> PathBuf {
    // This package is `WORKSPACE/eval`.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `$CARGO_TARGET_DIR` (made absolute against the current directory) or `WORKSPACE/target`.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                std::env::current_dir().unwrap_or_default().join(d)
            }
        }
        _ => workspace().join("target"),
    }
}

/// `cargo build --release ARGS…` in the workspace, into the target directory.
fn cargo_build(target: &Path, what: &[&str]) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("aifm-eval: cargo build --release {}", what.join(" "));
    let status = Command::new(&cargo)
        .current_dir(workspace())
        .env("CARGO_TARGET_DIR", target)
        .args(["build", "--release"])
        .args(what)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo build --release {} failed", what.join(" ")))
    }
}

/// The whole sweep; `Ok(false)` when interrupted (the report is written either way).
fn sweep(args: &Args) -> Result<bool, String> {
    if args.fractions.is_empty() || args.fractions.iter().any(|f| !(*f > 0.0 && f.is_finite())) {
        return Err("--fractions must be positive numbers".into());
    }
    if args.repeats == 0 {
        return Err("--repeats must be at least 1".into());
    }
    let mut systems = args.systems.clone();
    systems.sort();
    systems.dedup();

    let target = target_dir();
    let bin_dir = args
        .bin_dir
        .clone()
        .unwrap_or_else(|| target.join("release"));
    if !args.no_build {
        cargo_build(&target, &["-p", "aifm", "--example", &args.workload])?;
        if systems.iter().any(|s| matches!(s, System::AifmTcp { .. })) {
            cargo_build(&target, &["-p", "aifm-server", "--bin", "aifm-server"])?;
        }
    }
    let example = bin_dir.join("examples").join(&args.workload);
    if !example.is_file() {
        return Err(format!(
            "no example binary at {} (build it, or drop --no-build)",
            example.display()
        ));
    }
    let server_bin = bin_dir.join("aifm-server");
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    run::install_interrupt_handler().map_err(|e| format!("cannot handle signals: {e}"))?;

    let mut base: Vec<String> = vec!["--seed".into(), args.seed.to_string(), "--quiet".into()];
    if let Some(s) = args.scale {
        base.extend(["--scale".into(), s.to_string()]);
    }
    base.extend(args.extra.iter().cloned());
    let with = |more: &[&str]| -> Vec<String> {
        let mut v = base.clone();
        v.extend(more.iter().map(|s| s.to_string()));
        v
    };
    let timeout = Duration::from_secs(args.timeout);
    let stem = match &args.tag {
        Some(t) => format!("{}-{t}", args.workload),
        None => args.workload.clone(),
    };

    // 1. Warm-up: the working set.
    eprintln!("aifm-eval: {}: warm-up run (all-local)", args.workload);
    let warm = run::run(
        &example,
        &with(&["--all-local"]),
        None,
        timeout,
        args.verbose,
    )?;
    if warm.status != run::Status::Ok {
        return Err(format!(
            "the all-local warm-up run failed ({}): {:?}",
            warm.status.word(),
            warm.status
        ));
    }
    let report_json = warm.report.clone().unwrap_or_default();
    let data_mib = report_json.get("data_mib").and_then(|v| v.as_f64());
    let unit = report_json
        .get("unit")
        .and_then(|v| v.as_str())
        .unwrap_or("ops/s")
        .to_string();
    let (ws, ws_source) = match (args.working_set_mib, data_mib) {
        (Some(w), _) => (w, "--working-set-mib".to_string()),
        (None, Some(d)) => (
            d.ceil().max(1.0) as u64,
            "the example's data_mib".to_string(),
        ),
        (None, None) => (
            warm.maxrss_mib.ceil().max(1.0) as u64,
            "the all-local peak RSS".to_string(),
        ),
    };
    let overhead = data_mib.map_or(0, |d| (warm.maxrss_mib - d).max(0.0).ceil() as u64);
    eprintln!(
        "aifm-eval: working set {ws} MiB ({ws_source}); all-local peak RSS {:.1} MiB",
        warm.maxrss_mib
    );
    let mut rows = vec![Row {
        system: System::AllLocal,
        level: Level::Default,
        fraction: None,
        local_mib: None,
        cgroup_mib: None,
        repeat: 0,
        outcome: warm.clone(),
        swaps: None,
        cgroup_peak_mib: None,
    }];
    let mut skipped: Vec<(System, String)> = Vec::new();
    let mut zram: Option<paging::Zram> = None;
    let mut complete = true;

    let levels = |sys: System| -> Vec<Level> {
        let (list, make): (&[u16], fn(u16) -> Level) = match sys {
            System::Paging => (&args.paging_threads, Level::Threads),
            _ => (&args.inflight, Level::InFlight),
        };
        match list.is_empty() {
            true => vec![Level::Default],
            false => list.iter().map(|&n| make(n)).collect(),
        }
    };
    let mut points: Vec<(System, Level, Option<f64>)> = Vec::new();
    if systems.contains(&System::AllLocal) {
        points.extend(
            levels(System::AllLocal)
                .into_iter()
                .map(|l| (System::AllLocal, l, None)),
        );
    }
    for &f in &args.fractions {
        for &sys in systems.iter().filter(|s| **s != System::AllLocal) {
            points.extend(levels(sys).into_iter().map(|l| (sys, l, Some(f))));
        }
    }

    // Repeats are the outer loop, so that a slow spell of a shared machine is spread over
    // every system instead of landing on one.
    'sweep: for repeat in 1..=args.repeats {
        for &(sys, level, fraction) in &points {
            if skipped.iter().any(|(s, _)| *s == sys) {
                continue;
            }
            let budget = fraction.map(|f| ((f * ws as f64).round() as u64).max(1));
            if sys == System::Paging && zram.is_none() {
                let disk = (2 * ws.max(warm.maxrss_mib.ceil() as u64) + 64).max(256);
                match paging::Zram::setup(disk) {
                    Ok(z) => {
                        eprintln!(
                            "aifm-eval: paging: swap on {} ({disk} MiB, priority 32767)",
                            z.name()
                        );
                        zram = Some(z);
                    }
                    Err(why) => {
                        eprintln!("aifm-eval: skipping the paging system: {why}");
                        skipped.push((sys, why));
                        continue;
                    }
                }
            }
            if run::interrupted() {
                complete = false;
                break 'sweep;
            }
            let name = report::series_name(sys, level);
            let label = match (fraction, budget) {
                (Some(f), Some(b)) => format!("{name} at {:.0} % ({b} MiB)", f * 100.0),
                _ => name,
            };
            let level_args = level.args();
            let with = |more: &[&str]| -> Vec<String> {
                let mut v = with(more);
                v.extend(level_args.iter().cloned());
                v
            };
            let b = budget.unwrap_or(0).to_string();
            let mut row = Row {
                system: sys,
                level,
                fraction,
                local_mib: budget,
                cgroup_mib: None,
                repeat,
                outcome: run::Outcome {
                    status: run::Status::Ok,
                    report: None,
                    wall_s: 0.0,
                    maxrss_mib: 0.0,
                },
                swaps: None,
                cgroup_peak_mib: None,
            };
            row.outcome = match sys {
                System::AllLocal => run::run(
                    &example,
                    &with(&["--all-local"]),
                    None,
                    timeout,
                    args.verbose,
                )?,
                System::AifmEmbedded => run::run(
                    &example,
                    &with(&["--local-mib", &b, "--backend", "embedded"]),
                    None,
                    timeout,
                    args.verbose,
                )?,
                System::AifmTcp { servers, replicas } => {
                    let started: Result<Vec<server::Server>, String> = (0..servers)
                        .map(|_| server::Server::start(&server_bin))
                        .collect();
                    let servers = match started {
                        Ok(s) => s,
                        Err(why) => {
                            eprintln!("aifm-eval: skipping {}: {why}", sys.name());
                            skipped.push((sys, why));
                            continue;
                        }
                    };
                    let addrs: Vec<&str> = servers.iter().map(server::Server::addr).collect();
                    let addrs = addrs.join(",");
                    let r = replicas.to_string();
                    let mut more = vec!["--local-mib", &b, "--backend", &addrs];
                    if servers.len() > 1 {
                        more.extend(["--replicas", &r]);
                    }
                    let out = run::run(&example, &with(&more), None, timeout, args.verbose);
                    drop(servers);
                    out?
                }
                System::Paging => {
                    let limit = budget.unwrap_or(ws) + overhead;
                    let name = format!("aifm-eval-{}-{repeat}-{b}", std::process::id());
                    let cg = match paging::Cgroup::create(&name, limit << 20) {
                        Ok(cg) => cg,
                        Err(why) => {
                            eprintln!("aifm-eval: skipping the paging system: {why}");
                            skipped.push((sys, why));
                            continue;
                        }
                    };
                    row.cgroup_mib = Some(limit);
                    let before = paging::swap_counts();
                    let out = run::run(
                        &example,
                        &with(&["--all-local"]),
                        Some(&cg),
                        timeout,
                        args.verbose,
                    );
                    let after = paging::swap_counts();
                    row.swaps = Some((after.0 - before.0, after.1 - before.1));
                    row.cgroup_peak_mib = cg.peak_bytes().map(|p| p as f64 / (1 << 20) as f64);
                    let mut out = out?;
                    if let (run::Status::Failed(why), Some(n @ 1..)) =
                        (&mut out.status, cg.oom_kills())
                    {
                        why.push_str(&format!(" (the cgroup's OOM killer struck {n}x)"));
                    }
                    drop(cg);
                    out
                }
            };
            match row.throughput() {
                Some(t) => eprintln!(
                    "aifm-eval: {label}, run {repeat}/{}: {} {unit}",
                    args.repeats,
                    report::si(t)
                ),
                None => eprintln!(
                    "aifm-eval: {label}, run {repeat}/{}: {:?}",
                    args.repeats, row.outcome.status
                ),
            }
            let stop = row.outcome.status == run::Status::Interrupted;
            rows.push(row);
            if stop {
                complete = false;
                break 'sweep;
            }
        }
    }
    drop(zram);

    // 4. Report.
    let meds = report::medians(&rows);
    let png = format!("{stem}.png");
    let title = format!("{stem}: throughput vs local memory");
    let chart = match chart::draw(&args.out.join(&png), &title, &unit, &meds) {
        Ok(text) => {
            if !text {
                eprintln!(
                    "aifm-eval: no TrueType font found (set AIFM_EVAL_FONT): chart drawn without text"
                );
            }
            Some(png)
        }
        Err(e) => {
            eprintln!("aifm-eval: {e}");
            None
        }
    };
    let ctx = Context {
        workload: args.workload.clone(),
        stem: stem.clone(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        working_set_mib: ws,
        working_set_source: ws_source,
        all_local_rss_mib: warm.maxrss_mib,
        overhead_mib: overhead,
        repeats: args.repeats,
        unit,
        skipped,
        machine: markdown::machine_info(&workspace()),
        chart,
    };
    report::write_runs_csv(&args.out, &ctx, &rows)?;
    report::write_medians_csv(&args.out, &ctx, &meds)?;
    markdown::write_markdown(&args.out, &ctx, &meds)?;
    let md = args.out.join(format!("{stem}.md"));
    if let Ok(text) = std::fs::read_to_string(&md) {
        println!("{text}");
    }
    eprintln!(
        "aifm-eval: wrote {stem}-runs.csv, {stem}-medians.csv, {stem}.png and {stem}.md in {}",
        args.out.display()
    );
    Ok(complete)
}
