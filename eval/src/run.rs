//! Running one example process: spawn, optionally inside a cgroup, wait with a timeout and an
//! interrupt check, collect its rusage, and read its last JSON line.

use crate::paging::Cgroup;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Set by SIGINT/SIGTERM: the run in flight is killed and the sweep unwinds, so every guard
/// (zram, cgroups, servers) is torn down before the harness exits.
static INTERRUPT: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Installs the SIGINT/SIGTERM handlers that raise the interrupt flag.
///
/// # Errors
/// If the handlers cannot be installed.
pub fn install_interrupt_handler() -> std::io::Result<()> {
    let flag = INTERRUPT.get_or_init(Default::default).clone();
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, flag.clone())?;
    }
    Ok(())
}

/// Whether Ctrl-C (or SIGTERM) arrived.
pub fn interrupted() -> bool {
    INTERRUPT.get().is_some_and(|f| f.load(Ordering::Relaxed))
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Exited 0 with a JSON report.
    Ok,
    /// Exited otherwise, or printed no JSON; the text says how.
    Failed(String),
    /// Killed after the time limit.
    Timeout,
    /// Killed because the harness was interrupted.
    Interrupted,
}

impl Status {
    /// The short word the CSV carries.
    pub fn word(&self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed(_) => "failed",
            Status::Timeout => "timeout",
            Status::Interrupted => "interrupted",
        }
    }
}

/// What one run of an example produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// How it ended.
    pub status: Status,
    /// The example's report (its last stdout line), if it parsed as a JSON object.
    pub report: Option<serde_json::Value>,
    /// Wall-clock seconds of the whole process, loading included.
    pub wall_s: f64,
    /// Peak resident set of the child in MiB (`ru_maxrss`).
    pub maxrss_mib: f64,
}

/// Runs `program args…`, in `cgroup` if given, for at most `timeout`.
///
/// # Errors
/// Only if the process cannot be started at all; everything after that is an [`Outcome`].
pub fn run(
    program: &Path,
    args: &[String],
    cgroup: Option<&Cgroup>,
    timeout: Duration,
    verbose: bool,
) -> Result<Outcome, String> {
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped());
    if !verbose {
        cmd.stderr(Stdio::piped());
    }
    if let Some(cg) = cgroup {
        let fd = cg.procs_fd();
        // SAFETY: the closure runs in the child between fork and exec, where only
        // async-signal-safe calls are allowed: it makes one write(2) of a static buffer to an
        // descriptor the parent opened (and keeps open until the child is reaped). Writing "0"
        // to cgroup.procs moves the writing process itself, so no formatting is needed.
        unsafe {
            cmd.pre_exec(move || {
                if libc::write(fd, b"0".as_ptr().cast(), 1) == 1 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    if verbose {
        eprintln!("aifm-eval: $ {} {}", program.display(), args.join(" "));
    }
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let pid = child.id() as libc::pid_t;
    let out_reader = drain(child.stdout.take());
    let err_reader = drain(child.stderr.take());

    let mut killed = None;
    let (raw_status, rusage) = loop {
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value of this plain C struct.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `pid` is our unreaped child; both out-pointers are valid for writes.
        let rc = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if rc == pid {
            break (status, usage);
        }
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("wait4 on {pid} failed: {e}"));
            }
        }
        if killed.is_none() {
            if interrupted() {
                killed = Some(Status::Interrupted);
            } else if start.elapsed() > timeout {
                killed = Some(Status::Timeout);
            }
            if killed.is_some() {
                // SAFETY: `pid` is our child and not yet reaped, so the pid is still its own.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let wall_s = start.elapsed().as_secs_f64();
    // The child was reaped by wait4 above; `child` must not be waited on again.
    drop(child);
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    if verbose {
        print!("{stdout}");
    }

    let report = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(serde_json::Value::is_object);
    let status = if let Some(k) = killed {
        k
    } else if libc::WIFEXITED(raw_status) && libc::WEXITSTATUS(raw_status) == 0 {
        if report.is_some() {
            Status::Ok
        } else {
            Status::Failed("exited 0 but its last stdout line is not a JSON object".into())
        }
    } else {
        let how = if libc::WIFSIGNALED(raw_status) {
            format!("killed by signal {}", libc::WTERMSIG(raw_status))
        } else {
            format!("exit status {}", libc::WEXITSTATUS(raw_status))
        };
        let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Status::Failed(if tail.is_empty() {
            how
        } else {
            format!("{how}: {}", tail.join(" / "))
        })
    };
    Ok(Outcome {
        status,
        report,
        wall_s,
        maxrss_mib: rusage.ru_maxrss as f64 / 1024.0,
    })
}

/// Reads a child's pipe to the end on a thread, so a chatty child never blocks on it.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
