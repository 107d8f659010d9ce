//! The kernel-paging system: the all-local program inside a memory cgroup, with zram as swap.
//!
//! # What is set up
//!
//! * **One zram swap device per sweep** ([`Zram`]): `hot_add` a fresh device (never an
//!   existing one), `lz4` compression if offered, a disk size of a few times the working set,
//!   a swap header written here (no `mkswap` needed), and `swapon` at the highest priority, so
//!   pages leave the cgroup for this device first.
//! * **One memory cgroup per run** ([`Cgroup`]): created as a child of the harness's own
//!   memory cgroup where the hierarchy allows it (so the child stays inside whatever limits
//!   the harness already runs under), else at the hierarchy's root; cgroup v2 (`memory.max`)
//!   or v1 (`memory.limit_in_bytes`). The child joins it between `fork` and `exec`, so not a
//!   single page of the program is allocated outside it.
//!
//! # Teardown
//!
//! Both are guards: `Drop` undoes whatever part of the setup succeeded (swapoff, zram reset,
//! `hot_remove`, the device node if this module made it, `rmdir` of the cgroup), on success,
//! on error and on panic. Ctrl-C and SIGTERM only raise a flag (see `run::interrupted`): the
//! runner kills the child and unwinds normally, so the guards run then too. Only SIGKILL of
//! the harness itself leaves a device behind (`swapoff /dev/zramN` and
//! `echo N > /sys/class/zram-control/hot_remove` clean it up by hand).
//!
//! # When it is not possible
//!
//! Not root, no zram module, no memory controller: [`Zram::setup`] and [`Cgroup::create`]
//! return the reason as an error string, and the harness skips the paging system with it.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `swapon(2)` flag: use the priority in the low bits.
const SWAP_FLAG_PREFER: libc::c_int = 0x8000;
/// The highest swap priority (`SWAP_FLAG_PRIO_MASK`), so the kernel swaps here first.
const SWAP_PRIORITY: libc::c_int = 0x7fff;
/// The swap signature at the end of the header page.
const SWAP_MAGIC: &[u8; 10] = b"SWAPSPACE2";
/// Offset of the version-1 swap header fields in the first page (after the boot block).
const SWAP_INFO_OFFSET: usize = 1024;

const ZRAM_CONTROL: &str = "/sys/class/zram-control";

/// Writes `value` to a sysfs/cgroupfs file, naming the file in the error.
fn write_file(path: &Path, value: &str) -> Result<(), String> {
    fs::write(path, value).map_err(|e| format!("cannot write {value:?} to {}: {e}", path.display()))
}

/// A zram device used as the only swap of the paging runs. Dropping it tears it down.
#[derive(Debug)]
pub struct Zram {
    index: u32,
    node: PathBuf,
    made_node: bool,
    swapped_on: bool,
}

impl Zram {
    /// Adds a zram device of `disk_mib` MiB and turns it on as swap at the highest priority.
    ///
    /// # Errors
    /// Why paging cannot be measured here: not root, no zram, or a step refused.
    pub fn setup(disk_mib: u64) -> Result<Zram, String> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err("the harness is not running as root".into());
        }
        let hot_add = Path::new(ZRAM_CONTROL).join("hot_add");
        let index: u32 = fs::read_to_string(&hot_add)
            .map_err(|e| format!("zram is not available ({}: {e})", hot_add.display()))?
            .trim()
            .parse()
            .map_err(|e| format!("{} said something odd: {e}", hot_add.display()))?;
        let mut z = Zram {
            index,
            node: PathBuf::from(format!("/dev/zram{index}")),
            made_node: false,
            swapped_on: false,
        };
        let sys = z.sys_dir();
        // Not every kernel offers lz4; the default compressor is fine too.
        let _ = fs::write(sys.join("comp_algorithm"), "lz4");
        write_file(&sys.join("disksize"), &format!("{}", disk_mib << 20))?;
        z.ensure_node()?;
        z.write_swap_header(disk_mib << 20)?;
        let path = std::ffi::CString::new(z.node.as_os_str().as_bytes())
            .map_err(|_| "device path has a NUL".to_string())?;
        // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
        let rc = unsafe { libc::swapon(path.as_ptr(), SWAP_FLAG_PREFER | SWAP_PRIORITY) };
        if rc != 0 {
            return Err(format!(
                "swapon {} failed: {}",
                z.node.display(),
                std::io::Error::last_os_error()
            ));
        }
        z.swapped_on = true;
        Ok(z)
    }

    /// The device's name, e.g. `zram3`.
    pub fn name(&self) -> String {
        format!("zram{}", self.index)
    }

    fn sys_dir(&self) -> PathBuf {
        PathBuf::from(format!("/sys/block/zram{}", self.index))
    }

    /// Containers often have a static `/dev` without udev: make the block node if it is
    /// missing, from the numbers in sysfs.
    fn ensure_node(&mut self) -> Result<(), String> {
        for _ in 0..50 {
            if self.node.exists() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10)); // udev may be on its way
        }
        let dev = fs::read_to_string(self.sys_dir().join("dev"))
            .map_err(|e| format!("cannot read the device numbers of {}: {e}", self.name()))?;
        let (major, minor) = dev
            .trim()
            .split_once(':')
            .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
            .ok_or_else(|| format!("odd device numbers {dev:?} for {}", self.name()))?;
        let path = std::ffi::CString::new(self.node.as_os_str().as_bytes())
            .map_err(|_| "device path has a NUL".to_string())?;
        // SAFETY: `path` is a valid NUL-terminated string; mknod only reads it.
        let rc = unsafe {
            libc::mknod(
                path.as_ptr(),
                libc::S_IFBLK | 0o600,
                libc::makedev(major, minor),
            )
        };
        if rc != 0 {
            return Err(format!(
                "cannot create {}: {}",
                self.node.display(),
                std::io::Error::last_os_error()
            ));
        }
        self.made_node = true;
        Ok(())
    }

    /// What `mkswap` writes: a version-1 header in the first page, the signature at its end.
    fn write_swap_header(&self, bytes: u64) -> Result<(), String> {
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .ok()
            .filter(|&p| p >= 4096)
            .unwrap_or(4096);
        let last_page = u32::try_from(bytes / page as u64 - 1)
            .map_err(|_| "zram device too large for a swap header".to_string())?;
        let mut header = vec![0u8; page];
        header[SWAP_INFO_OFFSET..][..4].copy_from_slice(&1u32.to_ne_bytes()); // version
        header[SWAP_INFO_OFFSET + 4..][..4].copy_from_slice(&last_page.to_ne_bytes());
        // nr_badpages = 0, no UUID, no label.
        header[page - SWAP_MAGIC.len()..].copy_from_slice(SWAP_MAGIC);
        let mut f = OpenOptions::new()
            .write(true)
            .open(&self.node)
            .map_err(|e| format!("cannot open {}: {e}", self.node.display()))?;
        f.write_all(&header)
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("cannot write a swap header to {}: {e}", self.node.display()))
    }
}

impl Drop for Zram {
    fn drop(&mut self) {
        if self.swapped_on {
            if let Ok(path) = std::ffi::CString::new(self.node.as_os_str().as_bytes()) {
                // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
                if unsafe { libc::swapoff(path.as_ptr()) } != 0 {
                    eprintln!(
                        "aifm-eval: swapoff {} failed: {}",
                        self.node.display(),
                        std::io::Error::last_os_error()
                    );
                }
            }
        }
        let _ = fs::write(self.sys_dir().join("reset"), "1");
        if self.made_node {
            let _ = fs::remove_file(&self.node);
        }
        if let Err(e) = fs::write(
            Path::new(ZRAM_CONTROL).join("hot_remove"),
            self.index.to_string(),
        ) {
            eprintln!("aifm-eval: cannot remove {}: {e}", self.name());
        }
    }
}

/// Which cgroup hierarchy holds the memory controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// A memory cgroup for one run. Dropping it removes it (after its processes are gone).
#[derive(Debug)]
pub struct Cgroup {
    dir: PathBuf,
    version: Version,
    procs: File,
}

impl Cgroup {
    /// Creates a memory cgroup named `name` limited to `limit_bytes`, ready to take a child.
    ///
    /// # Errors
    /// Why no memory cgroup can be made here.
    pub fn create(name: &str, limit_bytes: u64) -> Result<Cgroup, String> {
        let (root, version) = memory_hierarchy()?;
        let own = own_cgroup(version).unwrap_or_default();
        let mut parents = vec![root.join(own.trim_start_matches('/'))];
        if parents[0] != root {
            parents.push(root.clone());
        }
        let mut why = String::new();
        for parent in parents {
            if version == Version::V2 {
                let ctl =
                    fs::read_to_string(parent.join("cgroup.subtree_control")).unwrap_or_default();
                if !ctl.split_whitespace().any(|c| c == "memory") {
                    why = format!(
                        "{} does not delegate the memory controller",
                        parent.display()
                    );
                    continue;
                }
            }
            let dir = parent.join(name);
            if let Err(e) = fs::create_dir(&dir) {
                why = format!("cannot create {}: {e}", dir.display());
                continue;
            }
            let limit_file = match version {
                Version::V2 => "memory.max",
                Version::V1 => "memory.limit_in_bytes",
            };
            let made = write_file(&dir.join(limit_file), &limit_bytes.to_string()).and_then(|()| {
                OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(dir.join("cgroup.procs"))
                    .map_err(|e| format!("cannot open {}/cgroup.procs: {e}", dir.display()))
            });
            match made {
                Ok(procs) => {
                    return Ok(Cgroup {
                        dir,
                        version,
                        procs,
                    })
                }
                Err(e) => {
                    let _ = fs::remove_dir(&dir);
                    why = e;
                }
            }
        }
        Err(why)
    }

    /// An open `cgroup.procs` descriptor, for the child to write itself into before `exec`.
    pub fn procs_fd(&self) -> libc::c_int {
        use std::os::fd::AsRawFd;
        self.procs.as_raw_fd()
    }

    /// How many times the kernel's OOM killer struck inside this cgroup (`oom_kill` in
    /// v2 `memory.events` or v1 `memory.oom_control`), where the kernel counts it.
    pub fn oom_kills(&self) -> Option<u64> {
        let file = match self.version {
            Version::V2 => "memory.events",
            Version::V1 => "memory.oom_control",
        };
        fs::read_to_string(self.dir.join(file))
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
    }

    /// The cgroup's peak memory use in bytes, where the kernel keeps one.
    pub fn peak_bytes(&self) -> Option<u64> {
        let file = match self.version {
            Version::V2 => "memory.peak",
            Version::V1 => "memory.max_usage_in_bytes",
        };
        fs::read_to_string(self.dir.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // The kernel lets go of a cgroup a moment after its last process is reaped.
        for _ in 0..200 {
            match fs::remove_dir(&self.dir) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        eprintln!(
            "aifm-eval: cannot remove the cgroup {} (still busy)",
            self.dir.display()
        );
    }
}

/// Where the memory controller is mounted, and which version it is.
fn memory_hierarchy() -> Result<(PathBuf, Version), String> {
    let v2 = Path::new("/sys/fs/cgroup");
    let controllers = fs::read_to_string(v2.join("cgroup.controllers")).unwrap_or_default();
    if controllers.split_whitespace().any(|c| c == "memory") {
        return Ok((v2.to_path_buf(), Version::V2));
    }
    let v1 = Path::new("/sys/fs/cgroup/memory");
    if v1.join("memory.limit_in_bytes").exists() {
        return Ok((v1.to_path_buf(), Version::V1));
    }
    Err("no cgroup memory controller is mounted".into())
}

/// This process's cgroup path in the memory hierarchy, from `/proc/self/cgroup`.
fn own_cgroup(version: Version) -> Option<String> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let ours = match version {
            Version::V2 => controllers.is_empty(),
            Version::V1 => controllers.split(',').any(|c| c == "memory"),
        };
        ours.then(|| path.to_string())
    })
}

/// Swap-ins and swap-outs so far, machine-wide (`pswpin`, `pswpout` of `/proc/vmstat`).
pub fn swap_counts() -> (u64, u64) {
    let text = fs::read_to_string("/proc/vmstat").unwrap_or_default();
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0)
    };
    (get("pswpin"), get("pswpout"))
}
