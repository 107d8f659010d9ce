//! Connecting and logging in: resolve and connect (within the connect timeout), send the
//! client hello, check the server's protocol version, prove the token against the server's
//! nonce, ask to resume a session, and hand over a non-blocking [`Conn`].

use super::conn::Conn;
use super::TcpBuilder;
use crate::error::{Error, Result};
use crate::wire::{
    self, auth, Challenge, ClientHello, FrameReader, Login, ResumeTicket, ServerMsg, Welcome,
    WireError,
};
use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;

enum Greeting {
    Challenge(Challenge),
    Welcome(Welcome),
    Fatal(WireError),
}

fn read_greeting(mut stream: &TcpStream, rd: &mut FrameReader) -> Result<Greeting> {
    loop {
        if let Some(body) = rd.next_frame()? {
            return match wire::decode_exact::<ServerMsg<'_>>(body)? {
                ServerMsg::Challenge(c) => Ok(Greeting::Challenge(c)),
                ServerMsg::Welcome(w) => Ok(Greeting::Welcome(w)),
                ServerMsg::Fatal(e) => Ok(Greeting::Fatal(e)),
                other => Err(Error::Protocol(format!(
                    "unexpected message during the handshake: {other:?}"
                ))),
            };
        }
        match rd.read_from(&mut stream) {
            Ok(0) => {
                return Err(Error::Disconnected(
                    "the server closed the connection during the handshake".into(),
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(Error::Disconnected("the handshake timed out".into()))
            }
            Err(e) => return Err(Error::Disconnected(format!("handshake failed: {e}"))),
        }
    }
}

/// Connects to `opts.addr`, shakes hands and logs in (resuming `resume`).
pub(super) fn handshake(
    opts: &TcpBuilder,
    resume: Option<ResumeTicket>,
) -> Result<(Arc<Conn>, Welcome)> {
    let unreachable =
        |e: &dyn std::fmt::Display| Error::Disconnected(format!("cannot reach {}: {e}", opts.addr));
    let addrs: Vec<_> = opts
        .addr
        .to_socket_addrs()
        .map_err(|e| unreachable(&e))?
        .collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the address resolves to nothing");
    let mut stream = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, opts.connect_timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let stream = stream.ok_or_else(|| unreachable(&last))?;
    let setup = |s: &TcpStream| -> io::Result<()> {
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(opts.connect_timeout))?;
        s.set_write_timeout(Some(opts.connect_timeout))
    };
    setup(&stream).map_err(|e| unreachable(&e))?;
    // The server's handshake messages are small; its replies may be large once logged in.
    let mut rd = FrameReader::new(wire::HANDSHAKE_MAX_FRAME);
    let mut buf = Vec::new();
    wire::encode_frame(&ClientHello::current(), &mut buf, opts.max_frame)?;
    (&stream).write_all(&buf).map_err(|e| unreachable(&e))?;
    let challenge = match read_greeting(&stream, &mut rd)? {
        Greeting::Challenge(c) => c,
        Greeting::Fatal(e) => return Err(e.into()),
        Greeting::Welcome(_) => return Err(Error::Protocol("welcome before login".into())),
    };
    if challenge.version != wire::VERSION {
        return Err(Error::Protocol(format!(
            "the server speaks protocol version {}, this client {}",
            challenge.version,
            wire::VERSION
        )));
    }
    let proof = match (challenge.nonce, &opts.token) {
        (Some(nonce), Some(token)) => Some(auth::proof(token, &nonce)),
        _ => None,
    };
    buf.clear();
    wire::encode_frame(&Login { proof, resume }, &mut buf, opts.max_frame)?;
    (&stream).write_all(&buf).map_err(|e| unreachable(&e))?;
    let welcome = match read_greeting(&stream, &mut rd)? {
        Greeting::Welcome(w) => w,
        Greeting::Fatal(e) => return Err(e.into()),
        Greeting::Challenge(_) => return Err(Error::Protocol("second challenge".into())),
    };
    let go = |s: &TcpStream| -> io::Result<()> {
        s.set_read_timeout(None)?;
        s.set_write_timeout(None)?;
        s.set_nonblocking(true)
    };
    go(&stream).map_err(|e| unreachable(&e))?;
    rd.set_max_frame(opts.max_frame);
    let conn = Conn::new(
        stream,
        rd,
        opts.max_frame.min(challenge.max_frame),
        opts.spin,
    );
    Ok((Arc::new(conn), welcome))
}
