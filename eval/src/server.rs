//! A loopback `aifm-server` for the `aifm-tcp` system: started per run, stopped by a guard.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running `aifm-server` on a free loopback port. Dropping it stops the server (SIGTERM,
/// then SIGKILL if it has not exited within two seconds).
#[derive(Debug)]
pub struct Server {
    child: Child,
    addr: String,
}

impl Server {
    /// Starts `binary --listen 127.0.0.1:0` and reads the address from its first stdout
    /// line (`aifm-server listening on ADDR`).
    ///
    /// # Errors
    /// If it cannot start or does not announce an address within ten seconds.
    pub fn start(binary: &Path) -> Result<Server, String> {
        let mut child = Command::new(binary)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--log-level",
                "warn",
                "--stats-interval",
                "0",
                "--grace",
                "1s",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok);
            let _ = tx.send(first);
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let mut server = Server {
            child,
            addr: String::new(),
        };
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .ok()
            .flatten()
            .ok_or_else(|| "aifm-server did not announce its address".to_string())?;
        server.addr = line
            .rsplit(' ')
            .next()
            .filter(|a| a.contains(':'))
            .ok_or_else(|| format!("aifm-server said {line:?}, not an address"))?
            .to_string();
        Ok(server)
    }

    /// `HOST:PORT` to pass as `--backend`.
    pub fn addr(&self) -> &str {
        &self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: the child has not been reaped (we only reap it below), so `pid` is still it.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
