//! Helpers for tests that run the real `aifm-server` binary on an ephemeral loopback port.
#![allow(dead_code)]

pub mod figures;

use aifm_core::backend::replicated::ReplicatedBackend;
use aifm_core::backend::tcp::{TcpBackend, TcpBuilder};
use aifm_core::backend::{Backend, OBJECT_STORE};
use aifm_core::wire::{self, Blob, ClientHello, FrameReader, Login, Op, ServerMsg};
use aifm_core::{Runtime, RuntimeBuilder};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A running `aifm-server` process; killed when dropped.
pub struct ServerProc {
    child: Child,
    pub addr: String,
    log: Arc<Mutex<String>>,
}

impl ServerProc {
    /// Starts the binary on `127.0.0.1:0` with `args` added.
    pub fn start(args: &[&str]) -> ServerProc {
        Self::start_on("127.0.0.1:0", args)
    }

    pub fn start_on(listen: &str, args: &[&str]) -> ServerProc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_aifm-server"))
            .args([
                "--listen",
                listen,
                "--log-level",
                "info",
                "--stats-interval",
                "0",
            ])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start aifm-server");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let addr = first
            .trim()
            .strip_prefix("aifm-server listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_string();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let mut stderr = child.stderr.take().unwrap();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        ServerProc { child, addr, log }
    }

    /// A client with a short timeout and no spinning delay worth noting.
    pub fn client(&self) -> TcpBackend {
        self.builder().connect().expect("connect")
    }

    pub fn builder(&self) -> TcpBuilder {
        TcpBuilder::new(self.addr.clone()).timeout(Duration::from_secs(10))
    }

    /// A runtime over this server with `local_bytes` of local memory.
    pub fn runtime(&self, local_bytes: usize) -> Runtime {
        Runtime::builder()
            .local_memory(local_bytes)
            .server(self.addr.clone())
            .build()
            .unwrap()
    }

    /// Everything the server has logged so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (bounded) until the server's log contains `needle`.
    pub fn log_contains(&self, needle: &str) -> bool {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if self.log.lock().unwrap().contains(needle) {
                return true;
            }
            thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib << 10
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `sig` to the server process.
    pub fn signal(&self, sig: libc::c_int) {
        signal_pid(self.child.id(), sig);
    }

    /// Stops the server process (SIGSTOP) and waits until the kernel reports it stopped.
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
        let stat = format!("/proc/{}/stat", self.child.id());
        assert!(eventually(|| std::fs::read_to_string(&stat)
            .ok()
            .and_then(|s| s.rsplit(") ").next().map(|r| r.starts_with('T')))
            .unwrap_or(false)));
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.child.wait().unwrap()
    }
}

/// Sends `sig` to process `pid` (a server's [`ServerProc::pid`], for a thread that must not
/// hold the `ServerProc`).
pub fn signal_pid(pid: u32, sig: libc::c_int) {
    // SAFETY: `kill(2)` has no memory-safety preconditions; callers pass our own child's pid
    // and a valid signal number.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// An object of `N` words that tells its origin: word `j` is `seed ^ j`, so a value read back
/// from the wrong key or with a torn word differs.
pub fn pattern<const N: usize>(seed: u64) -> [u64; N] {
    std::array::from_fn(|j| seed ^ j as u64)
}

/// The server `config` describes, run in this process (threads of its own, not the binary)
/// on an ephemeral loopback port and printing no statistics, until the value is dropped.
pub fn in_process(config: aifm_server::Config) -> aifm_server::RunningServer {
    let config = aifm_server::Config {
        listen: "127.0.0.1:0".into(),
        stats_interval: None,
        ..config
    };
    aifm_server::Server::bind(config).unwrap().spawn().unwrap()
}

/// Starts `n` servers with default arguments.
pub fn start_servers(n: usize) -> Vec<ServerProc> {
    (0..n).map(|_| ServerProc::start(&[])).collect()
}

/// A client of each server, as the children of a composite backend.
pub fn clients(servers: &[ServerProc]) -> Vec<Box<dyn Backend>> {
    servers
        .iter()
        .map(|s| Box::new(s.client()) as Box<dyn Backend>)
        .collect()
}

/// A replicated backend over a client of each server, with the backend's default replication.
pub fn replicated(servers: &[ServerProc]) -> ReplicatedBackend {
    ReplicatedBackend::new(clients(servers)).unwrap()
}

/// A runtime builder over all of `servers` (the builder's own replication unless told
/// otherwise) with a 2 MiB local budget, as [`small_runtime`] has.
pub fn servers_builder(servers: &[ServerProc]) -> RuntimeBuilder {
    Runtime::builder()
        .local_memory(2 << 20)
        .servers(servers.iter().map(|s| s.addr.clone()))
}

/// A runtime with a 2 MiB local budget over `far`: model tests put several times that in it,
/// so most of their data lives in far memory.
pub fn small_runtime(far: impl Backend + 'static) -> Runtime {
    Runtime::builder()
        .local_memory(2 << 20)
        .backend(far)
        .build()
        .unwrap()
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A token file in the temp directory, removed when dropped.
pub struct TokenFile(pub PathBuf);

impl TokenFile {
    pub fn new(token: &str) -> TokenFile {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "aifm-test-token-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, format!("{token}\n")).unwrap();
        TokenFile(path)
    }
    pub fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TokenFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A raw protocol connection for sending bad input.
pub struct Raw {
    pub stream: TcpStream,
    rd: FrameReader,
}

/// What the server said, owned.
#[derive(Debug, PartialEq)]
pub enum Said {
    Challenge,
    Welcome,
    Ok(u64, String),
    Err(u64, aifm_core::Error),
    Fatal(aifm_core::Error),
    Closed,
}

impl Raw {
    pub fn connect(addr: &str) -> Raw {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Raw {
            stream,
            rd: FrameReader::new(wire::DEFAULT_MAX_FRAME),
        }
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    pub fn send_frame(&mut self, body: &[u8]) {
        let mut f = (body.len() as u32).to_le_bytes().to_vec();
        f.extend_from_slice(body);
        self.send_bytes(&f);
    }

    pub fn send_msg<T: serde::Serialize>(&mut self, msg: &T) {
        let mut buf = Vec::new();
        wire::encode_frame(msg, &mut buf, wire::DEFAULT_MAX_FRAME).unwrap();
        self.send_bytes(&buf);
    }

    /// Sends request `id` carrying `op`.
    pub fn send_op(&mut self, id: u64, op: &aifm_core::wire::Op<'_>) {
        let mut buf = Vec::new();
        wire::encode_request(id, op, &mut buf, wire::DEFAULT_MAX_FRAME).unwrap();
        self.send_bytes(&buf);
    }

    /// Stores `value` under `key` in the object store with request `id`, and checks the
    /// server said done.
    pub fn put(&mut self, id: u64, key: &[u8], value: &[u8]) {
        self.send_op(
            id,
            &Op::Write {
                ds: OBJECT_STORE,
                key: Blob(key),
                value: Blob(value),
            },
        );
        assert_eq!(self.recv(), Said::Ok(id, "Done".into()));
    }

    /// Hello and login without a token.
    pub fn login(addr: &str) -> Raw {
        let mut r = Raw::connect(addr);
        r.send_msg(&ClientHello::current());
        assert_eq!(r.recv(), Said::Challenge);
        r.send_msg(&Login {
            proof: None,
            resume: None,
        });
        assert_eq!(r.recv(), Said::Welcome);
        r
    }

    pub fn recv(&mut self) -> Said {
        loop {
            match self.rd.next_frame() {
                Ok(Some(body)) => {
                    return match wire::decode_exact::<ServerMsg<'_>>(body).unwrap() {
                        ServerMsg::Challenge(_) => Said::Challenge,
                        ServerMsg::Welcome(_) => Said::Welcome,
                        ServerMsg::Response { id, result: Ok(r) } => Said::Ok(id, format!("{r:?}")),
                        ServerMsg::Response { id, result: Err(e) } => Said::Err(id, e.into()),
                        ServerMsg::Fatal(e) => Said::Fatal(e.into()),
                    }
                }
                Ok(None) => {}
                Err(e) => panic!("server sent a bad frame: {e}"),
            }
            match self.rd.read_from(&self.stream) {
                Ok(0) | Err(_) => return Said::Closed,
                Ok(_) => {}
            }
        }
    }

    /// Reads until the server closes the connection (bounded by the read timeout).
    pub fn closed(&mut self) -> bool {
        loop {
            match self.recv() {
                Said::Closed => return true,
                Said::Fatal(_) => {}
                other => panic!("expected the connection to close, got {other:?}"),
            }
        }
    }
}

/// A TCP relay between clients and a server whose connections can all be cut at once.
pub struct Relay {
    pub addr: String,
    cut: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    pub fn new(target: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let cut: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (target, streams, stopped) = (target.to_string(), cut.clone(), stop.clone());
        thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { break };
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                {
                    let mut s = streams.lock().unwrap();
                    s.push(client.try_clone().unwrap());
                    s.push(server.try_clone().unwrap());
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Relay { addr, cut, stop }
    }

    /// Cuts every relayed connection (the listener stays).
    pub fn cut_all(&self) {
        for s in self.cut.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut_all();
        let _ = TcpStream::connect(&self.addr); // wake the accept loop
    }
}

/// Polls `f` until it holds (bounded): no timing assertion, only a cap on waiting.
pub fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if f() {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    false
}
