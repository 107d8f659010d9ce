//! Results: one row per run, medians per (system, level, fraction), and the files written
//! from them (`NAME-runs.csv`, `NAME-medians.csv`, `NAME.md`).
//!
//! A *level* is how much concurrency a run was given: `--inflight N` for all-local and the
//! aifm-rs systems (requests in flight per serving thread), `--threads N` for paging (the
//! kernel cannot overlap faults inside one thread, so a user would add threads). A sweep
//! without levels runs each system once per point, as the examples' defaults say.

use crate::run::{Outcome, Status};
use std::path::Path;

/// The systems a workload is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum System {
    /// The `--all-local` program, no limit: the baseline.
    AllLocal,
    /// aifm-rs on the embedded far store, at the budget.
    AifmEmbedded,
    /// aifm-rs over TCP to `servers` loopback `aifm-server`s, each object on `replicas` of
    /// them, at the budget.
    AifmTcp {
        /// Memory servers started for the run.
        servers: u8,
        /// The replication factor (`--replicas`).
        replicas: u8,
    },
    /// The `--all-local` program in a memory cgroup at the budget, with zram swap.
    Paging,
}

/// The TCP topologies the harness knows, with their names: one server, then two and three
/// with and without replication.
const TOPOLOGIES: [(u8, u8, &str); 5] = [
    (1, 1, "aifm-tcp"),
    (2, 1, "aifm-tcp-2s"),
    (2, 2, "aifm-tcp-2s-r2"),
    (3, 1, "aifm-tcp-3s"),
    (3, 2, "aifm-tcp-3s-r2"),
];

impl System {
    /// Every system, in report order.
    pub const ALL: [System; 8] = [
        System::AllLocal,
        System::AifmEmbedded,
        System::tcp(1, 1),
        System::tcp(2, 1),
        System::tcp(2, 2),
        System::tcp(3, 1),
        System::tcp(3, 2),
        System::Paging,
    ];

    /// aifm-rs over `servers` loopback servers with replication factor `replicas`.
    pub const fn tcp(servers: u8, replicas: u8) -> System {
        System::AifmTcp { servers, replicas }
    }

    /// The name on the command line and in the files.
    pub fn name(self) -> &'static str {
        match self {
            System::AllLocal => "all-local",
            System::AifmEmbedded => "aifm-embedded",
            System::AifmTcp { servers, replicas } => TOPOLOGIES
                .iter()
                .find(|t| (t.0, t.1) == (servers, replicas))
                .map_or("aifm-tcp-?", |t| t.2),
            System::Paging => "paging",
        }
    }

    /// Parses a name from the command line.
    pub fn parse(s: &str) -> Result<System, String> {
        System::ALL
            .into_iter()
            .find(|sys| sys.name() == s.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = System::ALL.iter().map(|s| s.name()).collect();
                format!("unknown system {s:?} ({})", names.join(", "))
            })
    }

    /// Whether this is an aifm-rs system (the ones the ratios are about).
    pub fn is_aifm(self) -> bool {
        matches!(self, System::AifmEmbedded | System::AifmTcp { .. })
    }
}

/// The concurrency a run was given; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// The example's defaults (no flag passed).
    Default,
    /// `--inflight N`.
    InFlight(u16),
    /// `--threads N` (paging).
    Threads(u16),
}

impl Level {
    /// The suffix of a series name: `""`, `" ×64"`, `" 4 thr"`.
    pub fn suffix(self) -> String {
        match self {
            Level::Default => String::new(),
            Level::InFlight(n) => format!(" ×{n}"),
            Level::Threads(n) => format!(" {n} thr"),
        }
    }

    /// The example's arguments for this level.
    pub fn args(self) -> Vec<String> {
        match self {
            Level::Default => Vec::new(),
            Level::InFlight(n) => vec!["--inflight".into(), n.to_string()],
            // Paging runs the synchronous program with more threads.
            Level::Threads(n) => vec![
                "--inflight".into(),
                "1".into(),
                "--threads".into(),
                n.to_string(),
            ],
        }
    }

    /// The `--inflight` value, if any.
    pub fn inflight(self) -> Option<u16> {
        match self {
            Level::InFlight(n) => Some(n),
            Level::Threads(_) => Some(1),
            Level::Default => None,
        }
    }

    /// The `--threads` value, if any.
    pub fn threads(self) -> Option<u16> {
        match self {
            Level::Threads(n) => Some(n),
            _ => None,
        }
    }
}

/// A system at a level: one line of the chart, one column of the table.
pub fn series_name(system: System, level: Level) -> String {
    format!("{}{}", system.name(), level.suffix())
}

/// One run of the example.
#[derive(Debug, Clone)]
pub struct Row {
    /// Which system ran.
    pub system: System,
    /// At which level.
    pub level: Level,
    /// Local memory as a fraction of the working set (`None` for all-local).
    pub fraction: Option<f64>,
    /// The budget in MiB (`--local-mib`, or the data part of the cgroup limit).
    pub local_mib: Option<u64>,
    /// The cgroup's memory limit in MiB (paging only): the budget plus the process overhead.
    pub cgroup_mib: Option<u64>,
    /// 1-based repeat number; 0 is the warm-up run that measured the working set.
    pub repeat: u32,
    /// What the process did.
    pub outcome: Outcome,
    /// Machine-wide swap-ins and swap-outs during the run (paging only).
    pub swaps: Option<(u64, u64)>,
    /// The cgroup's peak memory in MiB (paging only, where the kernel reports it).
    pub cgroup_peak_mib: Option<f64>,
}

impl Row {
    /// The reported throughput of a successful run.
    pub fn throughput(&self) -> Option<f64> {
        if self.outcome.status != Status::Ok {
            return None;
        }
        self.field_f64("throughput").filter(|t| t.is_finite())
    }

    fn field_f64(&self, key: &str) -> Option<f64> {
        self.outcome.report.as_ref()?.get(key)?.as_f64()
    }

    fn field_str(&self, key: &str) -> Option<String> {
        let v = self.outcome.report.as_ref()?.get(key)?;
        Some(match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        })
    }
}

/// The median of the successful repeats of one (system, level, fraction).
#[derive(Debug, Clone)]
pub struct Median {
    /// Which system.
    pub system: System,
    /// At which level.
    pub level: Level,
    /// The fraction (`None` for all-local).
    pub fraction: Option<f64>,
    /// The budget in MiB.
    pub local_mib: Option<u64>,
    /// Successful runs / runs.
    pub ok: usize,
    /// Runs in all.
    pub runs: usize,
    /// Median, lowest and highest throughput of the successful runs.
    pub median: Option<(f64, f64, f64)>,
}

/// The median of a non-empty slice (mean of the middle two for an even count).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Groups the measured runs (not the warm-up) by system, level and fraction.
pub fn medians(rows: &[Row]) -> Vec<Median> {
    let mut out: Vec<Median> = Vec::new();
    for row in rows.iter().filter(|r| r.repeat > 0) {
        let at = out.iter().position(|m| {
            m.system == row.system && m.level == row.level && m.fraction == row.fraction
        });
        let m = match at {
            Some(i) => &mut out[i],
            None => {
                out.push(Median {
                    system: row.system,
                    level: row.level,
                    fraction: row.fraction,
                    local_mib: row.local_mib,
                    ok: 0,
                    runs: 0,
                    median: None,
                });
                out.last_mut().expect("just pushed")
            }
        };
        m.runs += 1;
        m.ok += usize::from(row.throughput().is_some());
    }
    for m in &mut out {
        let mut t: Vec<f64> = rows
            .iter()
            .filter(|r| {
                r.repeat > 0
                    && r.system == m.system
                    && r.level == m.level
                    && r.fraction == m.fraction
            })
            .filter_map(Row::throughput)
            .collect();
        if !t.is_empty() {
            let (lo, hi) = t
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                    (a.min(x), b.max(x))
                });
            m.median = Some((median(&mut t), lo, hi));
        }
    }
    out.sort_by(|a, b| {
        (a.system, a.level, a.fraction.unwrap_or(-1.0))
            .partial_cmp(&(b.system, b.level, b.fraction.unwrap_or(-1.0)))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    out
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// Everything the report files need besides the rows.
#[derive(Debug, Clone)]
pub struct Context {
    /// Workload name.
    pub workload: String,
    /// File stem: the workload, plus `-TAG` when tagged.
    pub stem: String,
    /// The harness's own command line.
    pub command: String,
    /// The working set in MiB the fractions refer to, and where it came from.
    pub working_set_mib: u64,
    /// How the working set was learnt.
    pub working_set_source: String,
    /// Peak RSS of the all-local warm-up run, MiB.
    pub all_local_rss_mib: f64,
    /// Process overhead (RSS beyond the data) added to the paging cgroup's limit, MiB.
    pub overhead_mib: u64,
    /// Measured repeats per point.
    pub repeats: u32,
    /// Throughput unit, from the example.
    pub unit: String,
    /// Systems that were asked for but skipped, with the reason.
    pub skipped: Vec<(System, String)>,
    /// Machine, commit and date lines.
    pub machine: Vec<(String, String)>,
    /// Whether the chart was drawn (with or without text).
    pub chart: Option<String>,
}

/// Writes `STEM-runs.csv`.
///
/// # Errors
/// I/O errors, with the path.
pub fn write_runs_csv(dir: &Path, ctx: &Context, rows: &[Row]) -> Result<(), String> {
    let mut w = CsvFile::create(dir, &format!("{}-runs.csv", ctx.stem))?;
    w.row([
        "workload",
        "system",
        "inflight",
        "threads",
        "fraction",
        "local_mib",
        "cgroup_mib",
        "repeat",
        "status",
        "throughput",
        "unit",
        "seconds",
        "ops",
        "data_mib",
        "wall_s",
        "maxrss_mib",
        "cgroup_peak_mib",
        "swap_ins",
        "swap_outs",
        "variant",
        "detail",
        "stats",
    ])?;
    for r in rows {
        let detail = match &r.outcome.status {
            Status::Failed(why) => why.clone(),
            _ => String::new(),
        };
        let stats = r
            .outcome
            .report
            .as_ref()
            .and_then(|j| j.get("stats"))
            .map(|v| v.to_string())
            .unwrap_or_default();
        let fields = [
            ctx.workload.clone(),
            r.system.name().to_string(),
            opt(r.level.inflight()),
            opt(r.level.threads()),
            opt(r.fraction),
            opt(r.local_mib),
            opt(r.cgroup_mib),
            r.repeat.to_string(),
            r.outcome.status.word().to_string(),
            opt(r.throughput()),
            r.field_str("unit").unwrap_or_default(),
            opt(r.field_f64("seconds")),
            r.field_str("ops").unwrap_or_default(),
            r.field_str("data_mib").unwrap_or_default(),
            format!("{:.3}", r.outcome.wall_s),
            format!("{:.1}", r.outcome.maxrss_mib),
            opt(r.cgroup_peak_mib.map(|m| format!("{m:.1}"))),
            opt(r.swaps.map(|s| s.0)),
            opt(r.swaps.map(|s| s.1)),
            r.field_str("variant").unwrap_or_default(),
            detail,
            stats,
        ];
        w.row(&fields)?;
    }
    w.finish()
}

/// Writes `STEM-medians.csv`.
///
/// # Errors
/// I/O errors, with the path.
pub fn write_medians_csv(dir: &Path, ctx: &Context, meds: &[Median]) -> Result<(), String> {
    let mut w = CsvFile::create(dir, &format!("{}-medians.csv", ctx.stem))?;
    w.row([
        "workload",
        "system",
        "inflight",
        "threads",
        "fraction",
        "local_mib",
        "runs",
        "ok",
        "median",
        "min",
        "max",
        "unit",
        "vs_all_local",
    ])?;
    for m in meds {
        let (med, lo, hi) = match m.median {
            Some((a, b, c)) => (a.to_string(), b.to_string(), c.to_string()),
            None => Default::default(),
        };
        let ratio = match (m.median, baseline(meds, m.level)) {
            (Some((v, _, _)), Some(b)) if b > 0.0 => format!("{:.4}", v / b),
            _ => String::new(),
        };
        let fields = [
            ctx.workload.clone(),
            m.system.name().to_string(),
            opt(m.level.inflight()),
            opt(m.level.threads()),
            opt(m.fraction),
            opt(m.local_mib),
            m.runs.to_string(),
            m.ok.to_string(),
            med,
            lo,
            hi,
            ctx.unit.clone(),
            ratio,
        ];
        w.row(&fields)?;
    }
    w.finish()
}

/// A CSV file being written (the `csv` crate quotes fields that need it), with every error
/// carrying the file's path.
struct CsvFile {
    path: std::path::PathBuf,
    writer: csv::Writer<std::fs::File>,
}

impl CsvFile {
    fn create(dir: &Path, name: &str) -> Result<Self, String> {
        let path = dir.join(name);
        let writer = csv::Writer::from_path(&path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(Self { path, writer })
    }

    fn row<I: IntoIterator<Item = T>, T: AsRef<[u8]>>(&mut self, fields: I) -> Result<(), String> {
        self.writer
            .write_record(fields)
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }

    fn finish(mut self) -> Result<(), String> {
        self.writer
            .flush()
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }
}

/// The all-local median a series at `level` is compared with: all-local at the same
/// `--inflight` (the same executor code), else the synchronous one (what paging runs), else
/// any.
pub fn baseline(meds: &[Median], level: Level) -> Option<f64> {
    let all_local = |want: &dyn Fn(Level) -> bool| {
        meds.iter()
            .find(|m| m.system == System::AllLocal && want(m.level) && m.median.is_some())
            .and_then(|m| m.median)
            .map(|(v, _, _)| v)
    };
    let same = match level {
        Level::InFlight(_) => all_local(&|l| l == level),
        _ => None,
    };
    same.or_else(|| all_local(&|l| matches!(l, Level::Default | Level::InFlight(1))))
        .or_else(|| all_local(&|_| true))
}

/// A throughput with an SI suffix: `12.3M`, `456k`, `7.89`.
pub fn si(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let (x, suffix) = match v.abs() {
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let digits = if x.abs() >= 100.0 {
        0
    } else if x.abs() >= 10.0 {
        1
    } else {
        2
    };
    format!("{x:.digits$}{suffix}")
}
