use super::*;
use quickcheck::{quickcheck, TestResult};

fn frames_of(buf: &[u8], max: u32) -> Vec<Vec<u8>> {
    let mut r = FrameReader::new(max);
    r.push(buf);
    let mut out = Vec::new();
    while let Some(body) = r.next_frame().unwrap() {
        out.push(body.to_vec());
    }
    out
}

#[test]
fn request_round_trip_every_op() {
    let keys = [Blob(b"a"), Blob(b"bc")];
    let ops = [
        Op::Ping,
        Op::Read {
            ds: 1,
            key: Blob(b"k"),
        },
        Op::Write {
            ds: 2,
            key: Blob(b"k"),
            value: Blob(&[9; 300]),
        },
        Op::Remove {
            ds: 3,
            key: Blob(b""),
        },
        Op::ReadMany {
            ds: 4,
            keys: keys.to_vec(),
        },
        Op::WriteMany {
            ds: 5,
            items: vec![(Blob(b"x"), Blob(b"y"))],
        },
        Op::RemoveMany {
            ds: 6,
            keys: keys.to_vec(),
        },
        Op::Construct {
            ds: 7,
            device: "dev",
            params: Blob(b"p"),
        },
        Op::Destruct { ds: 8 },
        Op::Compute {
            ds: 9,
            opcode: 3,
            input: Blob(b"in"),
        },
        Op::StoredBytes,
        Op::Stats,
        Op::Keys {
            ds: 10,
            after: None,
            limit: 100,
        },
        Op::Keys {
            ds: 0,
            after: Some(Blob(b"last")),
            limit: 1,
        },
    ];
    let mut buf = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        encode_request(i as u64 * 1000, op, &mut buf, DEFAULT_MAX_FRAME).unwrap();
    }
    let bodies = frames_of(&buf, DEFAULT_MAX_FRAME);
    assert_eq!(bodies.len(), ops.len());
    for (i, (body, op)) in bodies.iter().zip(&ops).enumerate() {
        let (id, got) = decode_request(body).unwrap();
        assert_eq!(id, i as u64 * 1000);
        assert_eq!(&got.unwrap(), op);
    }
}

#[test]
fn unknown_op_still_yields_its_id() {
    let mut body = postcard::to_allocvec(&42u64).unwrap();
    body.push(0x7f); // no such op
    let (id, op) = decode_request(&body).unwrap();
    assert_eq!(id, 42);
    assert!(matches!(op, Err(crate::Error::Protocol(_))));
}

#[test]
fn trailing_bytes_are_refused() {
    let mut body = postcard::to_allocvec(&(1u64, Op::Ping)).unwrap();
    body.push(0);
    assert!(decode_request(&body).unwrap().1.is_err());
}

#[test]
fn oversized_is_refused_before_the_body() {
    let mut r = FrameReader::new(10);
    r.push(&11u32.to_le_bytes());
    assert!(r.next_frame().is_err());
    let mut buf = Vec::new();
    assert!(encode_frame(&Blob(&[0; 11]), &mut buf, 10).is_err());
    assert!(buf.is_empty());
}

#[test]
fn reader_handles_byte_by_byte_delivery() {
    let mut buf = Vec::new();
    for i in 0..5u64 {
        encode_request(
            i,
            &Op::Read {
                ds: 0,
                key: Blob(&[i as u8; 5000]),
            },
            &mut buf,
            1 << 20,
        )
        .unwrap();
    }
    let mut r = FrameReader::new(1 << 20);
    let mut seen = 0;
    for &b in &buf {
        r.push(&[b]);
        while let Some(body) = r.next_frame().unwrap() {
            assert_eq!(decode_request(body).unwrap().0, seen);
            seen += 1;
        }
    }
    assert_eq!(seen, 5);
    assert!(!r.has_partial());
}

#[test]
fn wire_errors_map_back_to_typed_errors() {
    use crate::Error;
    for e in [
        Error::ServerFull { needed: 5 },
        Error::AuthFailed("x".into()),
        Error::NotFound,
        Error::UnknownDevice("d".into()),
        Error::UnknownOpcode(4),
        Error::UnknownStructure(3),
        Error::Protocol("p".into()),
        Error::Codec("c".into()),
        Error::Remote("r".into()),
        Error::Unsupported("u".into()),
    ] {
        assert_eq!(Error::from(WireError::from(&e)), e);
    }
    assert!(Error::from(WireError::Shutdown("bye".into())).is_disconnected());
}

#[test]
fn keys_reply_round_trips_and_is_zero_copy() {
    let answer = Answer::Keys(vec![b"a".to_vec(), Vec::new(), vec![7; 300]]);
    let msg = ServerMsg::Response {
        id: 5,
        result: Ok(answer.as_reply()),
    };
    let body = postcard::to_allocvec(&msg).unwrap();
    let back = decode_exact::<ServerMsg<'_>>(&body).unwrap();
    assert_eq!(back, msg);
    let ServerMsg::Response {
        result: Ok(reply), ..
    } = back
    else {
        panic!("not a response");
    };
    assert_eq!(Answer::from(reply), answer);
}

#[test]
fn malformed_key_listings_are_typed_errors_with_their_id() {
    let mut good = Vec::new();
    let op = Op::Keys {
        ds: 3,
        after: Some(Blob(b"abc")),
        limit: 10,
    };
    encode_request(77, &op, &mut good, 1 << 20).unwrap();
    let body = &good[LEN_PREFIX..];
    // Truncated anywhere after the id: the id is still read, the op is a protocol error.
    for cut in 2..body.len() {
        let (id, got) = decode_request(&body[..cut]).unwrap();
        assert_eq!(id, 77);
        assert!(
            matches!(got, Err(crate::Error::Protocol(_))),
            "cut at {cut}"
        );
    }
    // A key length running past the end of the frame.
    let mut long = body.to_vec();
    let at = long.len() - 5; // the length byte of `after`'s blob
    long[at] = 200;
    assert!(matches!(
        decode_request(&long).unwrap().1,
        Err(crate::Error::Protocol(_))
    ));
}

quickcheck! {
    fn random_bytes_never_panic(data: Vec<u8>, max: u32) -> bool {
        decode_all(&data, max % (1 << 20));
        true
    }

    fn random_bodies_never_panic(body: Vec<u8>) -> bool {
        let mut framed = (body.len() as u32).to_le_bytes().to_vec();
        framed.extend_from_slice(&body);
        decode_all(&framed, 1 << 20) == 1
    }

    /// Whatever the bytes (length prefixes included) and however they are cut into reads,
    /// the reader holds at most twice what it has received plus one minimum read.
    fn reader_memory_follows_the_bytes_received(
        data: Vec<u8>,
        cuts: Vec<u16>,
        announced_less: u32
    ) -> bool {
        // A frame announcing about 1 MiB, then the (random) bytes that really come.
        let max: u32 = 1 << 20;
        let announced = max - announced_less % 4096;
        let mut r = FrameReader::new(max);
        let mut stream = announced.to_le_bytes().to_vec();
        stream.extend_from_slice(&data);
        let mut rest = &stream[..];
        let mut received = 0;
        // The prefix arrives on its own, then the rest in random pieces.
        let mut cuts = std::iter::once(LEN_PREFIX as u16).chain(cuts.into_iter().cycle());
        while !rest.is_empty() {
            let take = (cuts.next().unwrap_or(u16::MAX) as usize).clamp(1, rest.len());
            let mut piece = &rest[..take];
            while !piece.is_empty() {
                received += r.read_from(&mut piece).unwrap();
                if r.allocated() > 2 * received + (16 << 10) {
                    return false;
                }
                while let Ok(Some(_)) = r.next_frame() {}
            }
            rest = &rest[take..];
        }
        true
    }

    fn corrupted_requests_never_panic(key: Vec<u8>, flips: Vec<(usize, u8)>) -> TestResult {
        let mut buf = Vec::new();
        let op = Op::WriteMany { ds: 1, items: vec![(Blob(&key), Blob(&key))] };
        encode_request(9, &op, &mut buf, 1 << 20).unwrap();
        if buf.len() <= LEN_PREFIX {
            return TestResult::discard();
        }
        for (at, x) in flips {
            let i = LEN_PREFIX + at % (buf.len() - LEN_PREFIX);
            buf[i] ^= x;
        }
        decode_all(&buf, 1 << 20);
        TestResult::passed()
    }
}

/// Memory before login: a length prefix alone must not make the reader allocate (and
/// zero-fill) the announced body; its buffer grows with the bytes that really arrive.
#[test]
fn reader_grows_with_the_bytes_that_arrive_not_the_announced_length() {
    let max = 64 << 20;
    let mut r = FrameReader::new(max);
    let mut start = (max - 8).to_le_bytes().to_vec();
    start.extend_from_slice(&[7; 100]);
    let mut input = &start[..];
    r.read_from(&mut input).unwrap();
    assert_eq!(r.next_frame().unwrap(), None);
    assert!(
        r.allocated() <= 64 << 10,
        "{} bytes held for 104 received",
        r.allocated()
    );
    // The frame still completes when the rest trickles in, and the buffer stays within a
    // small factor of what arrived.
    let body: Vec<u8> = (0..max as usize - 8).map(|i| i as u8).collect();
    let mut rest = &body[100..];
    let mut received = start.len();
    while !rest.is_empty() {
        let piece = &rest[..rest.len().min(1 << 20)];
        let mut src = piece;
        while !src.is_empty() {
            let n = r.read_from(&mut src).unwrap();
            received += n;
            assert!(r.allocated() <= 2 * received + (64 << 10));
        }
        rest = &rest[piece.len()..];
    }
    let got = r.next_frame().unwrap().unwrap();
    assert_eq!(&got[..100], &[7; 100]);
    assert_eq!(&got[100..], &body[100..]);
}

/// Memory before login: the handshake's frames are small, so a pre-login reader refuses a
/// length beyond [`HANDSHAKE_MAX_FRAME`] at once.
#[test]
fn handshake_frames_have_a_small_maximum() {
    const { assert!(HANDSHAKE_MAX_FRAME <= 64 << 10) };
    let mut r = FrameReader::new(HANDSHAKE_MAX_FRAME);
    r.push(&(HANDSHAKE_MAX_FRAME + 1).to_le_bytes());
    assert!(r.next_frame().is_err());
    assert!(r.allocated() <= HANDSHAKE_MAX_FRAME as usize + LEN_PREFIX);
}

/// `take_frame` hands out the body just read, whichever side it copies, and the reader reads
/// on from the bytes that followed it.
#[test]
fn take_frame_keeps_the_stream_intact() {
    fn framed(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as u32).to_le_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }
    let big: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
    let small = [1u8, 2, 3];
    // big then small (the buffer leaves with the big body), small then big (the body is
    // copied out), and one alone (nothing follows).
    for order in [
        [&big[..], &small[..]],
        [&small[..], &big[..]],
        [&big[..], &[][..]],
    ] {
        let mut stream = framed(order[0]);
        if !order[1].is_empty() {
            stream.extend(framed(order[1]));
        }
        let mut r = FrameReader::new(1 << 20);
        // The second frame's last byte is still on its way.
        let cut = stream.len() - usize::from(!order[1].is_empty());
        r.push(&stream[..cut]);
        assert!(r.next_frame().unwrap() == Some(order[0]));
        let (buf, body) = r.take_frame(vec![0xEE; 16]);
        assert!(&buf[body] == order[0]);
        assert_eq!(
            r.take_frame(Vec::new()).1.len(),
            0,
            "a second take is empty"
        );
        r.push(&stream[cut..]);
        let rest = if order[1].is_empty() {
            None
        } else {
            Some(order[1])
        };
        assert!(r.next_frame().unwrap() == rest);
        assert_eq!(r.next_frame().unwrap(), None);
    }
}
