//! Faults and bad input against the real `aifm-server` binary.

mod common;

use aifm_core::backend::{Backend, OBJECT_STORE, OBJECT_STORE_DEVICE};
use aifm_core::wire::{self, ClientHello, Login, Op};
use aifm_core::Error;
use common::{eventually, Raw, Said, ServerProc, TokenFile};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// A healthy client keeps working while another connection misbehaves.
fn healthy(far: &dyn Backend, round: u8) {
    let key = [round];
    far.write(OBJECT_STORE, &key, b"still here").unwrap();
    assert_eq!(
        far.read(OBJECT_STORE, &key).unwrap().as_deref(),
        Some(&b"still here"[..])
    );
}

#[test]
fn oversized_frame_closes_only_that_connection() {
    let server = ServerProc::start(&["--max-frame", "1MiB"]);
    let far = server.client();
    healthy(&far, 0);
    let mut raw = Raw::login(&server.addr);
    raw.send_bytes(&u32::MAX.to_le_bytes());
    match raw.recv() {
        Said::Fatal(Error::Protocol(why)) => assert!(why.contains("exceeds"), "{why}"),
        other => panic!("expected a fatal protocol error, got {other:?}"),
    }
    assert!(raw.closed());
    healthy(&far, 1);
    // Also before the handshake.
    let mut raw = Raw::connect(&server.addr);
    raw.send_bytes(&(2u32 << 20).to_le_bytes());
    assert!(matches!(raw.recv(), Said::Fatal(Error::Protocol(_))));
    healthy(&far, 2);
    assert!(server.log_contains("exceeds the maximum"));
    assert!(far.server_stats().unwrap().protocol_errors >= 2);
}

#[test]
fn malformed_hello_is_refused() {
    let server = ServerProc::start(&[]);
    let far = server.client();
    let mut raw = Raw::connect(&server.addr);
    raw.send_frame(&[0xff; 9]);
    assert!(matches!(raw.recv(), Said::Fatal(Error::Protocol(_))));
    assert!(raw.closed());
    let mut raw = Raw::connect(&server.addr);
    raw.send_msg(&ClientHello {
        magic: *b"HTTP",
        version: wire::VERSION,
    });
    match raw.recv() {
        Said::Fatal(Error::Protocol(why)) => assert!(why.contains("magic"), "{why}"),
        other => panic!("{other:?}"),
    }
    healthy(&far, 0);
}

#[test]
fn unknown_version_is_refused() {
    let server = ServerProc::start(&[]);
    let far = server.client();
    let mut raw = Raw::connect(&server.addr);
    raw.send_msg(&ClientHello {
        magic: wire::MAGIC,
        version: 99,
    });
    match raw.recv() {
        Said::Fatal(Error::Protocol(why)) => assert!(why.contains("version 99"), "{why}"),
        other => panic!("expected a version error, got {other:?}"),
    }
    assert!(raw.closed());
    healthy(&far, 0);
    assert!(server.log_contains("version 99"));
}

#[test]
fn truncated_frame_closes_that_connection() {
    let server = ServerProc::start(&[]);
    let far = server.client();
    let mut raw = Raw::login(&server.addr);
    raw.send_bytes(&100u32.to_le_bytes());
    raw.send_bytes(&[1; 10]);
    raw.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(raw.closed());
    healthy(&far, 0);
    assert!(server.log_contains("truncated frame"));
}

#[test]
fn malformed_request_is_answered_and_the_connection_survives() {
    let server = ServerProc::start(&[]);
    let mut raw = Raw::login(&server.addr);
    // Request id 5 with an op tag no version defines.
    let mut body = postcard::to_allocvec(&5u64).unwrap();
    body.extend_from_slice(&[0x7f, 1, 2, 3]);
    raw.send_frame(&body);
    assert!(matches!(raw.recv(), Said::Err(5, Error::Protocol(_))));
    // A valid op with trailing garbage.
    let mut body = postcard::to_allocvec(&(6u64, Op::Ping)).unwrap();
    body.push(0);
    raw.send_frame(&body);
    assert!(matches!(raw.recv(), Said::Err(6, Error::Protocol(_))));
    // The connection still works.
    raw.send_msg(&(7u64, Op::Ping));
    assert_eq!(raw.recv(), Said::Ok(7, "Pong".into()));
    // A frame without even a request id ends it.
    raw.send_frame(&[0xff; 12]);
    assert!(matches!(raw.recv(), Said::Fatal(Error::Protocol(_))));
    assert!(raw.closed());
}

#[test]
fn wrong_or_missing_token_is_refused() {
    let token = TokenFile::new("correct horse");
    let server = ServerProc::start(&["--token-file", token.path()]);
    let e = server.builder().token("wrong horse").connect().unwrap_err();
    assert!(
        matches!(&e, Error::AuthFailed(why) if why.contains("wrong token")),
        "{e:?}"
    );
    let e = server.builder().connect().unwrap_err();
    assert!(
        matches!(&e, Error::AuthFailed(why) if why.contains("requires a token")),
        "{e:?}"
    );
    let far = server.builder().token("correct horse").connect().unwrap();
    healthy(&far, 0);
    assert_eq!(far.server_stats().unwrap().auth_failures, 2);
    // A raw login with no proof gets the same typed refusal.
    let mut raw = Raw::connect(&server.addr);
    raw.send_msg(&ClientHello::current());
    assert_eq!(raw.recv(), Said::Challenge);
    raw.send_msg(&Login {
        proof: Some([0; 32]),
        resume: None,
    });
    assert!(matches!(raw.recv(), Said::Fatal(Error::AuthFailed(_))));
    assert!(raw.closed());
}

#[test]
fn capacity_exhausted_is_server_full_and_data_survives() {
    let server = ServerProc::start(&["--capacity", "64KiB"]);
    let far = server.client();
    let a = vec![0xa5; 40 << 10];
    far.write(OBJECT_STORE, b"a", &a).unwrap();
    let e = far.write(OBJECT_STORE, b"b", &[1; 40 << 10]).unwrap_err();
    assert!(e.is_server_full(), "{e:?}");
    let e = far
        .write_many(
            OBJECT_STORE,
            &[(b"c", &[2; 20 << 10]), (b"d", &[3; 20 << 10])],
        )
        .unwrap_err();
    assert!(e.is_server_full(), "{e:?}");
    assert_eq!(far.read(OBJECT_STORE, b"a").unwrap().unwrap(), a);
    assert_eq!(far.read(OBJECT_STORE, b"b").unwrap(), None);
    // The capacity is shared: another client cannot take what is left either.
    let other = server.client();
    assert!(other
        .write(OBJECT_STORE, b"x", &[4; 30 << 10])
        .unwrap_err()
        .is_server_full());
    // Removing frees the space.
    assert!(far.remove(OBJECT_STORE, b"a").unwrap());
    other.write(OBJECT_STORE, b"x", &[4; 30 << 10]).unwrap();
    assert_eq!(far.stored_bytes(), 0);
}

#[test]
fn client_quota_is_per_client() {
    let server = ServerProc::start(&["--capacity", "1MiB", "--client-quota", "16KiB"]);
    let (one, two) = (server.client(), server.client());
    one.write(OBJECT_STORE, b"k", &[1; 10 << 10]).unwrap();
    assert!(one
        .write(OBJECT_STORE, b"l", &[1; 10 << 10])
        .unwrap_err()
        .is_server_full());
    two.write(OBJECT_STORE, b"k", &[2; 10 << 10]).unwrap();
    assert_eq!(
        one.read(OBJECT_STORE, b"k").unwrap().unwrap(),
        [1; 10 << 10]
    );
}

#[test]
fn unknown_device_opcode_and_structure_are_typed() {
    let server = ServerProc::start(&[]);
    let far = server.client();
    assert_eq!(
        far.construct(5, "no.such.device", b"").unwrap_err(),
        Error::UnknownDevice("no.such.device".into())
    );
    far.construct(5, OBJECT_STORE_DEVICE, b"").unwrap();
    assert_eq!(
        far.compute(5, 99, b"x").unwrap_err(),
        Error::UnknownOpcode(99)
    );
    assert_eq!(far.read(77, b"k").unwrap_err(), Error::UnknownStructure(77));
    far.write(5, b"k", b"v").unwrap();
    far.destruct(5).unwrap();
    assert_eq!(far.read(5, b"k").unwrap_err(), Error::UnknownStructure(5));
    healthy(&far, 0);
    let stats = far.server_stats().unwrap();
    assert!(stats.errors >= 4);
    assert_eq!(stats.requests.construct, 2);
}

#[test]
fn killed_server_gives_disconnected_not_a_hang() {
    let mut server = ServerProc::start(&[]);
    let far = Arc::new(
        server
            .builder()
            .timeout(Duration::from_secs(30))
            .connect()
            .unwrap(),
    );
    far.write(OBJECT_STORE, b"k", &[7; 4096]).unwrap();
    // Readers with requests in flight when the server dies.
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let far = far.clone();
            thread::spawn(move || loop {
                match far.read(OBJECT_STORE, b"k") {
                    Ok(v) => assert_eq!(v.unwrap(), [7; 4096]),
                    Err(e) => return e,
                }
            })
        })
        .collect();
    assert!(eventually(
        || far.server_stats().unwrap().requests.read > 100
    ));
    server.kill();
    for r in readers {
        let e = r.join().unwrap();
        assert!(e.is_disconnected(), "expected Disconnected, got {e:?}");
    }
    // Later calls try to reconnect, fail fast and say so.
    for _ in 0..3 {
        let e = far.read(OBJECT_STORE, b"k").unwrap_err();
        assert!(e.is_disconnected(), "{e:?}");
    }
    assert!(!far.is_connected());
}

#[test]
fn stalled_server_times_out_then_recovers() {
    let server = ServerProc::start(&[]);
    let far = server
        .builder()
        .timeout(Duration::from_millis(300))
        .connect()
        .unwrap();
    far.write(OBJECT_STORE, b"k", b"v").unwrap();
    server.freeze();
    let e = far.read(OBJECT_STORE, b"k").unwrap_err();
    server.signal(libc::SIGCONT);
    assert_eq!(e, Error::Timeout);
    // The late reply to the abandoned request is dropped; the connection goes on.
    assert_eq!(far.read(OBJECT_STORE, b"k").unwrap().unwrap(), b"v");
    assert_eq!(far.reconnects(), 0);
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let mut server = ServerProc::start(&[]);
    let far = server.client();
    healthy(&far, 0);
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    let e = far.read(OBJECT_STORE, &[0]).unwrap_err();
    assert!(e.is_disconnected(), "{e:?}");
    assert!(server.log_contains("shutting down"));
    assert!(server.log_contains("final stats"));
}

#[test]
fn help_explains_every_option() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aifm-server"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for opt in [
        "--listen",
        "--capacity",
        "--token-file",
        "--log-level",
        "--client-quota",
        "--grace",
        "8GiB",
        "loopback",
    ] {
        assert!(help.contains(opt), "--help does not mention {opt}:\n{help}");
    }
}

#[test]
fn connections_beyond_the_limit_are_refused_typed() {
    let server = ServerProc::start(&["--max-connections", "2"]);
    let (a, _b) = (server.client(), server.client());
    let e = server.builder().connect().unwrap_err();
    assert!(e.is_disconnected(), "{e:?}");
    assert!(e.to_string().contains("connection limit"), "{e}");
    healthy(&a, 0);
}

#[test]
fn random_garbage_never_takes_the_server_down() {
    let server = ServerProc::start(&["--max-frame", "64KiB"]);
    let far = server.client();
    let mut x = 0x2545_f491_4f6c_dd1du64; // seeded xorshift: the same bytes every run
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..40u8 {
        let mut raw = if round % 2 == 0 {
            Raw::connect(&server.addr)
        } else {
            Raw::login(&server.addr) // garbage after a good handshake
        };
        let len = (next() % 300) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        raw.send_bytes(&bytes);
        let _ = raw.stream.shutdown(std::net::Shutdown::Write);
        // Whatever the server answers, it ends this connection without hanging.
        loop {
            match raw.recv() {
                Said::Closed => break,
                Said::Fatal(_) | Said::Err(..) | Said::Ok(..) | Said::Challenge | Said::Welcome => {
                }
            }
        }
        healthy(&far, round);
    }
    assert!(eventually(|| far.server_stats().unwrap().connections == 1));
}
