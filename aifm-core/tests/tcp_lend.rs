//! Batch reads of the TCP backend against a scripted server: a reply the client cannot use
//! (another count of values than keys, another kind of reply, a frame cut short) is
//! [`Error::Protocol`], never a panic, and a good one lends each value's exact bytes.
//! (The same against a real `aifm-server` is in that crate's `tcp_lend` test.)

mod common;

use aifm_core::backend::{tcp::TcpBuilder, Backend, OBJECT_STORE};
use aifm_core::wire::{
    self, Blob, Challenge, FrameReader, Login, Op, Reply, ResumeTicket, ServerMsg, SessionId,
    Welcome,
};
use aifm_core::Error;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// Reads one frame body from a blocking stream.
fn next(s: &mut TcpStream, rd: &mut FrameReader) -> Vec<u8> {
    loop {
        if let Some(body) = rd.next_frame().unwrap() {
            return body.to_vec();
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "the client hung up");
        rd.push(&chunk[..n]);
    }
}

fn send(s: &mut TcpStream, msg: &ServerMsg<'_>) {
    let mut buf = Vec::new();
    wire::encode_frame(msg, &mut buf, wire::DEFAULT_MAX_FRAME).unwrap();
    s.write_all(&buf).unwrap();
}

/// A server for one connection: logs it in, then answers its first request with the frame
/// body `answer(id, op)` returns. Returns the address to connect to.
fn scripted(answer: fn(u64, Op<'_>) -> Vec<u8>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut rd = FrameReader::new(wire::DEFAULT_MAX_FRAME);
        next(&mut s, &mut rd); // the hello
        let challenge = Challenge {
            version: wire::VERSION,
            nonce: None,
            max_frame: wire::DEFAULT_MAX_FRAME,
        };
        send(&mut s, &ServerMsg::Challenge(challenge));
        let login = next(&mut s, &mut rd);
        wire::decode_exact::<Login>(&login).unwrap();
        let ticket = ResumeTicket {
            session: SessionId([7; 16]),
            secret: [9; 32],
        };
        let welcome = Welcome {
            ticket,
            resumed: false,
            quota: u64::MAX,
        };
        send(&mut s, &ServerMsg::Welcome(welcome));
        let req = next(&mut s, &mut rd);
        let (id, op) = wire::decode_request(&req).unwrap();
        let body = answer(id, op.unwrap());
        let mut frame = (body.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&body);
        s.write_all(&frame).unwrap();
        // Hold the connection until the client is done with it.
        let _ = s.read(&mut [0u8; 1]);
    });
    addr
}

fn reply(id: u64, r: Reply<'_>) -> Vec<u8> {
    postcard::to_allocvec(&ServerMsg::Response { id, result: Ok(r) }).unwrap()
}

/// What a sink saw: each value's index and bytes (`None`: no such object).
type Lent = Vec<(usize, Option<Vec<u8>>)>;

/// Runs a batch read of two keys against `answer`; returns what the sink saw and the result.
fn batch(answer: fn(u64, Op<'_>) -> Vec<u8>) -> (Lent, Result<(), Error>) {
    let far = TcpBuilder::new(scripted(answer))
        .reconnect(false)
        .timeout(Duration::from_secs(20))
        .connect()
        .unwrap();
    let mut seen = Vec::new();
    let r = far.read_many_with(OBJECT_STORE, &[b"a", b"b"], &mut |i, v| {
        seen.push((i, v.map(<[u8]>::to_vec)))
    });
    (seen, r)
}

#[test]
fn a_good_reply_lends_each_value_exactly() {
    common::within(Duration::from_secs(60), || {
        let (seen, r) = batch(|id, op| {
            assert!(matches!(op, Op::ReadMany { ref keys, .. } if keys.len() == 2));
            reply(id, Reply::Values(vec![Some(Blob(b"")), None]))
        });
        r.unwrap();
        assert_eq!(seen, [(0, Some(vec![])), (1, None)]);
    });
}

#[test]
fn too_few_values_is_a_protocol_error() {
    common::within(Duration::from_secs(60), || {
        let (seen, r) = batch(|id, _| reply(id, Reply::Values(vec![Some(Blob(b"x"))])));
        assert!(matches!(r, Err(Error::Protocol(_))), "{r:?}");
        assert!(seen.is_empty());
    });
}

#[test]
fn another_kind_of_reply_is_a_protocol_error() {
    common::within(Duration::from_secs(60), || {
        let (seen, r) = batch(|id, _| reply(id, Reply::Done));
        assert!(matches!(r, Err(Error::Protocol(_))), "{r:?}");
        assert!(seen.is_empty());
    });
}

#[test]
fn a_reply_cut_short_is_a_protocol_error() {
    common::within(Duration::from_secs(60), || {
        let (seen, r) = batch(|id, _| {
            let mut body = reply(id, Reply::Values(vec![Some(Blob(b"abcdef")), None]));
            body.truncate(body.len() - 3); // the frame says it ends here
            body
        });
        assert!(matches!(r, Err(Error::Protocol(_))), "{r:?}");
        assert!(seen.is_empty());
    });
}
