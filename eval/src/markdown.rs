//! `NAME.md`: the run's context (machine, commit, command, working set), the chart, and the
//! table of medians with their ratios to the best paging level and to all-local.

use crate::report::{baseline, series_name, si, Context, Level, Median, System};
use std::fmt::Write as _;
use std::path::Path;

/// Writes `STEM.md`: context, the chart, and the table of medians and ratios.
///
/// # Errors
/// I/O errors, with the path.
pub fn write_markdown(dir: &Path, ctx: &Context, meds: &[Median]) -> Result<(), String> {
    let mut s = String::new();
    let _ = writeln!(s, "# Evaluation: `{}`\n", ctx.stem);
    for (k, v) in &ctx.machine {
        let _ = writeln!(s, "- **{k}:** {v}");
    }
    let _ = writeln!(s, "- **command:** `{}`", ctx.command);
    let _ = writeln!(
        s,
        "- **working set:** {} MiB ({}); all-local peak RSS {:.1} MiB",
        ctx.working_set_mib, ctx.working_set_source, ctx.all_local_rss_mib
    );
    let _ = writeln!(
        s,
        "- **paging limit:** budget + {} MiB (the all-local process's memory beyond its data)",
        ctx.overhead_mib
    );
    let _ = writeln!(
        s,
        "- **numbers:** median of {} runs, throughput in {}",
        ctx.repeats, ctx.unit
    );
    for (sys, why) in &ctx.skipped {
        let _ = writeln!(s, "- **skipped `{}`:** {why}", sys.name());
    }
    if let Some(png) = &ctx.chart {
        let _ = writeln!(s, "\n![throughput vs local memory]({png})");
    }

    // The series in report order: systems as `System::ALL` lists them, levels ascending.
    let mut series: Vec<(System, Level)> = meds.iter().map(|m| (m.system, m.level)).collect();
    series.sort_by_key(|&(sys, level)| (System::ALL.iter().position(|s| *s == sys), level));
    series.dedup();
    let mut fractions: Vec<f64> = meds.iter().filter_map(|m| m.fraction).collect();
    fractions.sort_by(f64::total_cmp);
    fractions.dedup();
    let get = |sys: System, level: Level, f: Option<f64>| {
        meds.iter()
            .find(|m| m.system == sys && m.level == level && m.fraction == f)
            .map(|m| (m.median.map(|x| x.0), m.ok, m.runs, m.local_mib))
    };
    let paging: Vec<Level> = series
        .iter()
        .filter(|s| s.0 == System::Paging)
        .map(|s| s.1)
        .collect();
    let aifm: Vec<(System, Level)> = series.iter().copied().filter(|s| s.0.is_aifm()).collect();
    let has_base = series.iter().any(|s| s.0 == System::AllLocal);
    // Several paging levels: the ratios are against the best of them at each budget.
    let best_paging = |f: f64| -> Option<(f64, Level)> {
        paging
            .iter()
            .filter_map(|&l| Some((get(System::Paging, l, Some(f))?.0?, l)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
    };
    let paging_word = if paging.len() > 1 {
        "best paging"
    } else {
        "paging"
    };

    let mut head = vec!["local memory".to_string(), "budget".to_string()];
    head.extend(
        series
            .iter()
            .map(|&(sys, l)| format!("{} ({})", series_name(sys, l), ctx.unit)),
    );
    for &(sys, l) in &aifm {
        if !paging.is_empty() {
            head.push(format!("{} / {paging_word}", series_name(sys, l)));
        }
        if has_base {
            head.push(format!("{} / all-local", series_name(sys, l)));
        }
    }
    if !paging.is_empty() && has_base {
        head.push(format!("{paging_word} / all-local"));
    }
    let _ = writeln!(s, "\n| {} |", head.join(" | "));
    let _ = writeln!(
        s,
        "|{}",
        head.iter()
            .enumerate()
            .map(|(i, _)| if i < 2 { "---|" } else { "---:|" })
            .collect::<String>()
    );
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        // Two significant digits for the small ratios of far memory against all-local.
        (Some(a), Some(b)) if b > 0.0 && a / b < 0.1 => format!("{:.3}x", a / b),
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "–".to_string(),
    };
    for &f in &fractions {
        let budget = series
            .iter()
            .find_map(|&(sys, l)| get(sys, l, Some(f)).and_then(|x| x.3))
            .map(|b| format!("{b} MiB"))
            .unwrap_or_default();
        let mut cells = vec![format!("{:.0} %", f * 100.0), budget];
        for &(sys, l) in &series {
            let cell = if sys == System::AllLocal {
                get(sys, l, None)
                    .and_then(|x| x.0)
                    .map(si)
                    .unwrap_or_else(|| "failed".into())
            } else {
                match get(sys, l, Some(f)) {
                    Some((Some(v), ok, runs, _)) if ok == runs => si(v),
                    Some((Some(v), ok, runs, _)) => format!("{} ({ok}/{runs} ok)", si(v)),
                    Some((None, _, runs, _)) => format!("failed (0/{runs} ok)"),
                    None => "–".into(),
                }
            };
            cells.push(cell);
        }
        let best = best_paging(f);
        let best_cell = |x: Option<f64>| match (x, best) {
            (Some(_), Some((p, l))) if paging.len() > 1 => {
                format!("{} ({})", ratio(x, Some(p)), l.suffix().trim())
            }
            (_, b) => ratio(x, b.map(|b| b.0)),
        };
        for &(sys, l) in &aifm {
            let v = get(sys, l, Some(f)).and_then(|x| x.0);
            if !paging.is_empty() {
                cells.push(best_cell(v));
            }
            if has_base {
                cells.push(ratio(v, baseline(meds, l)));
            }
        }
        if !paging.is_empty() && has_base {
            cells.push(ratio(best.map(|b| b.0), baseline(meds, Level::Default)));
        }
        let _ = writeln!(s, "| {} |", cells.join(" | "));
    }
    if paging.len() > 1 {
        let _ = writeln!(
            s,
            "\n\"/ {paging_word}\": against the fastest paging level at that budget (named in \
             brackets); \"/ all-local\": against all-local at the same `--inflight`."
        );
    }
    if meds.iter().any(|m| m.ok < m.runs) {
        let _ = writeln!(
            s,
            "\n\"(k/n ok)\": only k of n runs succeeded; the median is over those k, and why the \
             others failed is in the `detail` column of the runs CSV."
        );
    }
    let _ = writeln!(
        s,
        "\nRaw runs: `{0}-runs.csv`; medians: `{0}-medians.csv`.",
        ctx.stem
    );
    write(dir, &format!("{}.md", ctx.stem), &s)
}

fn write(dir: &Path, name: &str, text: &str) -> Result<(), String> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Machine, commit and date, for the markdown.
pub fn machine_info(workspace: &Path) -> Vec<(String, String)> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|x| x.1))
        .unwrap_or("unknown CPU")
        .trim()
        .to_string();
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kib: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:")?
                .trim()
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_string();
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(workspace)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let mut commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    if git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty()) {
        commit.push_str(" (with uncommitted changes)");
    }
    vec![
        ("date".into(), utc_now()),
        ("commit".into(), commit),
        (
            "machine".into(),
            format!(
                "{nproc} CPUs ({model}), {:.1} GiB RAM, Linux {kernel}",
                mem_kib as f64 / (1 << 20) as f64
            ),
        ),
    ]
}

/// The current UTC time as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (proleptic Gregorian), after Howard Hinnant's algorithm.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn med(system: System, level: Level, fraction: Option<f64>, v: Option<f64>) -> Median {
        Median {
            system,
            level,
            fraction,
            local_mib: fraction.map(|f| (f * 16.0) as u64),
            ok: usize::from(v.is_some()) * 3,
            runs: 3,
            median: v.map(|v| (v, v, v)),
        }
    }

    fn context() -> Context {
        Context {
            workload: "w".into(),
            stem: "w".into(),
            command: "aifm-eval".into(),
            working_set_mib: 16,
            working_set_source: "test".into(),
            all_local_rss_mib: 20.0,
            overhead_mib: 4,
            repeats: 3,
            unit: "ops/s".into(),
            skipped: Vec::new(),
            machine: Vec::new(),
            chart: None,
        }
    }

    #[test]
    fn levels_are_series_compared_with_the_best_paging_and_the_same_inflight() {
        let f = Some(0.25);
        let meds = vec![
            med(System::AllLocal, Level::InFlight(1), None, Some(1000.0)),
            med(System::AllLocal, Level::InFlight(64), None, Some(800.0)),
            med(System::tcp(1, 1), Level::InFlight(1), f, Some(10.0)),
            med(System::tcp(1, 1), Level::InFlight(64), f, Some(400.0)),
            med(System::Paging, Level::Threads(1), f, Some(20.0)),
            med(System::Paging, Level::Threads(4), f, Some(50.0)),
            med(System::Paging, Level::Threads(16), f, None), // OOM-killed
        ];
        let dir = std::env::temp_dir().join(format!("aifm-eval-md-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_markdown(&dir, &context(), &meds).unwrap();
        let md = std::fs::read_to_string(dir.join("w.md")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        for needle in [
            "aifm-tcp ×64 (ops/s)",
            "paging 4 thr (ops/s)",
            "aifm-tcp ×64 / best paging",
            // 400 / 50 (the 4-thread paging level, the fastest that ran).
            "8.00x (4 thr)",
            // Against all-local ×64 (800), not ×1 (1000).
            "| 0.50x |",
            "failed (0/3 ok)",
            // The best paging level against the synchronous all-local.
            "| 0.050x |",
        ] {
            assert!(md.contains(needle), "{needle:?} missing from:\n{md}");
        }
    }

    #[test]
    fn without_levels_the_table_is_as_before() {
        let f = Some(0.5);
        let meds = vec![
            med(System::AllLocal, Level::Default, None, Some(100.0)),
            med(System::AifmEmbedded, Level::Default, f, Some(50.0)),
            med(System::Paging, Level::Default, f, Some(25.0)),
        ];
        let dir = std::env::temp_dir().join(format!("aifm-eval-md0-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_markdown(&dir, &context(), &meds).unwrap();
        let md = std::fs::read_to_string(dir.join("w.md")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            md.contains("| aifm-embedded / paging | aifm-embedded / all-local |"),
            "{md}"
        );
        assert!(md.contains("| 2.00x | 0.50x | 0.25x |"), "{md}");
        assert!(!md.contains("best paging"), "{md}");
    }
}
