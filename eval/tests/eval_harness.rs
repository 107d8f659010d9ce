//! The evaluation harness end to end, on its own probe workload (`examples/eval_probe.rs`):
//! tiny sizes, all-local and aifm-embedded, plus kernel paging where this machine allows it
//! (root, zram, a memory cgroup); elsewhere the harness must skip it and say why.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The probe binary next to the harness (`cargo test` builds examples into `DIR/examples`),
/// built on demand when this test runs alone (`cargo test --test eval_harness`).
fn probe(bin_dir: &Path) -> PathBuf {
    let probe = bin_dir.join("examples").join("eval_probe");
    if !probe.is_file() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let release = bin_dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(cargo);
        cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args([
            "build",
            "-p",
            "aifm",
            "--example",
            "eval_probe",
        ]);
        if release {
            cmd.arg("--release");
        }
        if let Some(target) = bin_dir.parent() {
            cmd.env("CARGO_TARGET_DIR", target);
        }
        assert!(
            cmd.status().expect("cargo runs").success(),
            "building eval_probe"
        );
    }
    probe
}

/// Parses a CSV line naively (the fields checked here carry no commas).
fn fields(line: &str) -> Vec<&str> {
    line.split(',').collect()
}

#[test]
fn harness_sweeps_the_probe_and_writes_its_report() {
    let harness = PathBuf::from(env!("CARGO_BIN_EXE_aifm-eval"));
    let bin_dir = harness.parent().expect("binary directory").to_path_buf();
    probe(&bin_dir);
    let out = std::env::temp_dir().join(format!("aifm-eval-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);

    let result = Command::new(&harness)
        .args(["--workload", "eval_probe", "--no-build", "--bin-dir"])
        .arg(&bin_dir)
        .args([
            "--fractions",
            "0.5,1.0",
            "--systems",
            "all-local,aifm-embedded,paging",
            "--repeats",
            "2",
            "--scale",
            "0.0625", // 4 MiB of data
            "--timeout",
            "60",
            "--out",
        ])
        .arg(&out)
        .args(["--", "--passes", "1"])
        .output()
        .expect("aifm-eval runs");
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "aifm-eval failed:\n{stderr}");

    // Runs: the warm-up, 2 all-local, 2 per (aifm-embedded, fraction), and paging if it ran.
    let runs = std::fs::read_to_string(out.join("eval_probe-runs.csv")).expect("runs CSV");
    let mut lines = runs.lines();
    let header = fields(lines.next().expect("a header"));
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let (system, status, throughput) = (col("system"), col("status"), col("throughput"));
    let rows: Vec<Vec<&str>> = lines.map(fields).collect();
    let count = |sys: &str| rows.iter().filter(|r| r[system] == sys).count();
    assert_eq!(count("all-local"), 3, "{runs}");
    assert_eq!(count("aifm-embedded"), 4, "{runs}");
    let paging_ran = count("paging") > 0;
    if paging_ran {
        assert_eq!(count("paging"), 4, "{runs}");
    } else {
        assert!(
            stderr.contains("skipping the paging system"),
            "paging neither ran nor was skipped with a reason:\n{stderr}"
        );
        eprintln!("paging not available here; the harness skipped it as it should");
    }
    for r in &rows {
        assert_eq!(r[status], "ok", "a run failed: {r:?}");
        let t: f64 = r[throughput].parse().expect("a throughput");
        assert!(t.is_finite() && t > 0.0, "throughput {t} in {r:?}");
    }

    let medians = std::fs::read_to_string(out.join("eval_probe-medians.csv")).expect("medians CSV");
    let expected = 1 + 2 + if paging_ran { 2 } else { 0 };
    assert_eq!(medians.lines().count(), 1 + expected, "{medians}");
    for line in medians.lines().skip(1) {
        let f = fields(line);
        let median: f64 = f[6].parse().expect("a median");
        let (lo, hi): (f64, f64) = (f[7].parse().unwrap(), f[8].parse().unwrap());
        assert!(lo <= median && median <= hi && median > 0.0, "{line}");
    }

    let md = std::fs::read_to_string(out.join("eval_probe.md")).expect("markdown");
    for needle in [
        "aifm-embedded / all-local",
        "| 50 % | 2 MiB |",
        "| 100 % | 4 MiB |",
        "**commit:**",
        "**machine:**",
        "**date:**",
        "eval_probe.png",
    ] {
        assert!(md.contains(needle), "{needle:?} missing from:\n{md}");
    }
    assert_eq!(md.contains("aifm-embedded / paging"), paging_ran, "{md}");

    let png = std::fs::read(out.join("eval_probe.png")).expect("chart");
    assert!(
        png.len() > 1000 && png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG"
    );
    let _ = std::fs::remove_dir_all(&out);
}
