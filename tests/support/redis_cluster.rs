//! A Redis Cluster of this test's own (3 masters + 3 replicas on loopback), started with
//! `scripts/redis-cluster.sh` and stopped when dropped, also on panic.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// A running cluster on ports `base..base + 6`.
pub struct TestCluster {
    pub base: u16,
    pub addr: String,
    dir: PathBuf,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/redis-cluster.sh")
}

/// Whether nothing listens on `port` of loopback (a bind succeeds).
fn free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Whether a cluster could use `base..base + 6` and their bus ports (`+ 10000`).
fn free_block(base: u16) -> bool {
    (base..base + 6).all(|p| free(p) && free(p + 10_000))
}

impl TestCluster {
    /// Starts a cluster on six free ports, trying `base..base + 6` first and then blocks
    /// further up (so that test processes running at the same time on one machine, or
    /// nodes left over by an interrupted run, do not collide). Panics with the script's
    /// message if it cannot start one; nodes of a failed start are stopped.
    pub fn start(base: u16) -> TestCluster {
        let base = (0..40u16)
            .map(|k| base + 20 * k)
            .find(|&b| free_block(b))
            .expect("no six free loopback ports for a Redis Cluster");
        let dir =
            std::env::temp_dir().join(format!("aifm-redis-test-{base}-{}", std::process::id()));
        let out = Command::new("bash")
            .arg(script())
            .args(["start", &base.to_string()])
            .arg(&dir)
            .output()
            .expect("run scripts/redis-cluster.sh");
        if !out.status.success() {
            let _ = Command::new("bash")
                .arg(script())
                .args(["stop", &base.to_string()])
                .arg(&dir)
                .output();
            panic!(
                "scripts/redis-cluster.sh start {base} failed (is redis-server installed?): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let addr = String::from_utf8(out.stdout).unwrap().trim().to_string();
        TestCluster { base, addr, dir }
    }

    /// `redis-cli -p port args...`, its standard output.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The ports of the nodes that are masters now.
    pub fn masters(&self) -> Vec<u16> {
        (self.base..self.base + 6)
            .filter(|&p| self.cli(p, &["role"]).lines().next() == Some("master"))
            .collect()
    }

    /// SIGKILLs the node on `port`.
    pub fn kill(&self, port: u16) {
        let pid = std::fs::read_to_string(self.dir.join(format!("redis-{port}.pid")))
            .expect("pid file")
            .trim()
            .to_string();
        let ok = Command::new("kill").args(["-9", &pid]).status().unwrap();
        assert!(ok.success(), "kill -9 {pid}");
    }

    /// Stops every node on `port` cleanly (SIGTERM through the script's pid file).
    pub fn stop_node(&self, port: u16) {
        let _ = self.cli(port, &["shutdown", "nosave"]);
    }

    /// Number of keys on all live masters.
    pub fn keys(&self) -> usize {
        self.masters()
            .into_iter()
            .map(|p| {
                self.cli(p, &["dbsize"])
                    .trim()
                    .parse::<usize>()
                    .unwrap_or(0)
            })
            .sum()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", &self.base.to_string()])
            .arg(&self.dir)
            .status();
    }
}
