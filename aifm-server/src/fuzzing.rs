//! The random-request driver behind the `dispatch` fuzz target and the random-request test
//! (feature `fuzzing`).
//!
//! [`drive`] turns arbitrary bytes into a short client session against a [`Dispatcher`]
//! with the collections' devices registered and small limits: two clients construct
//! structures (vectors, a hash map, object stores, sometimes with each other's tokens or
//! bad parameters), then send random operations of random sizes: reads, writes and batches
//! (with repeated and huge keys), computations with structured vector requests and hash map
//! inputs, key listings, destructions. After every request it checks what must always hold:
//!
//! * the server answered with one well-formed response frame no larger than a frame;
//! * no client is charged more than its quota, the server not more than its capacity;
//! * a client's stored bytes never exceed its charge.
//!
//! And at the end, when both clients are gone, every charge has been given back. A panic
//! anywhere (in a device, or a broken invariant) is a finding.

use crate::{Config, Dispatcher, Session};
use aifm_collections::hashmap::device as map;
use aifm_collections::vec::device as vec;
use aifm_core::backend::OBJECT_STORE_DEVICE;
use aifm_core::wire::{self, Blob, Op, ServerMsg};
use arbitrary::{Result, Unstructured};

/// The driver's server: small enough that quotas, capacity and frame limits are reached.
pub const CAPACITY: u64 = 8 << 20;
/// Each client's quota.
pub const CLIENT_QUOTA: u64 = 4 << 20;
/// The frame limit.
pub const MAX_FRAME: u32 = 256 << 10;

const DEVICES: [&str; 4] = [
    OBJECT_STORE_DEVICE,
    vec::DEVICE,
    map::DEVICE,
    "no.such.device",
];

/// Up to `max` bytes.
fn bytes(u: &mut Unstructured<'_>, max: usize) -> Result<Vec<u8>> {
    let n = u.int_in_range(0..=max)?;
    Ok(u.bytes(n)?.to_vec())
}

/// A structure id: mostly one of the few the driver constructs.
fn ds(u: &mut Unstructured<'_>) -> Result<u32> {
    Ok(if u.ratio(15, 16)? {
        u.int_in_range(0u32..=6)?
    } else {
        u.arbitrary()?
    })
}

/// A key: a vector chunk index, a hash map key (2-byte shard prefix), or any bytes.
fn key(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    Ok(match u.int_in_range(0u8..=3)? {
        0 | 1 => (u.int_in_range(0u64..=8)?).to_le_bytes().to_vec(),
        2 => {
            let mut k = u.int_in_range(0u16..=3)?.to_le_bytes().to_vec();
            k.extend_from_slice(&bytes(u, 4)?);
            k
        }
        _ => bytes(u, 32)?,
    })
}

/// A value: mostly small, sometimes large, sometimes a chunk of `u64`s `0..n` (so gathers and
/// permutation checks have indices to work with).
fn value(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    Ok(match u.int_in_range(0u8..=15)? {
        0..=7 => bytes(u, 64)?,
        8..=12 => {
            let n = u.int_in_range(0u64..=32)?;
            (0..n).flat_map(u64::to_le_bytes).collect()
        }
        13 | 14 => vec![u.arbitrary::<u8>()?; u.int_in_range(0usize..=(64 << 10))?],
        _ => vec![0; u.int_in_range(0usize..=(MAX_FRAME as usize))?],
    })
}

/// The input of a hash map computation.
fn map_input(u: &mut Unstructured<'_>) -> Result<(u32, Vec<u8>)> {
    let opcode = u.int_in_range(0u32..=6)?;
    let input = match opcode {
        map::TAKE => key(u)?,
        map::TAKE_MANY => {
            let n = u.int_in_range(0usize..=16)?;
            let keys: Vec<Vec<u8>> = (0..n).map(|_| key(u)).collect::<Result<_>>()?;
            let mut out = Vec::new();
            aifm_core::codec::encode_serde(&keys, &mut out)
                .map_err(|_| arbitrary::Error::IncorrectFormat)?;
            out
        }
        _ => bytes(u, 4)?,
    };
    Ok((opcode, input))
}

/// Sends `op` from `who` and checks the answer's frame.
fn send(who: &Session, op: &Op<'_>) {
    let mut frame = Vec::new();
    if wire::encode_request(1, op, &mut frame, MAX_FRAME).is_err() {
        return; // a client cannot send a frame this large
    }
    let mut out = Vec::new();
    who.request(&frame[wire::LEN_PREFIX..], &mut out)
        .expect("a request with an id is answered");
    let body = &out[wire::LEN_PREFIX..];
    assert!(
        body.len() <= MAX_FRAME as usize,
        "a reply larger than a frame"
    );
    match wire::decode_exact::<ServerMsg<'_>>(body) {
        Ok(ServerMsg::Response { id: 1, .. }) => {}
        other => panic!("not a response: {other:?}"),
    }
}

/// One random operation from one of `clients`.
fn step(u: &mut Unstructured<'_>, clients: &[Session; 2], tokens: &[u128]) -> Result<()> {
    let who = &clients[usize::from(u.arbitrary::<bool>()?)];
    match u.int_in_range(0u8..=12)? {
        0 => send(
            who,
            &Op::Read {
                ds: ds(u)?,
                key: Blob(&key(u)?),
            },
        ),
        1 | 2 => {
            let (k, v) = (key(u)?, value(u)?);
            send(
                who,
                &Op::Write {
                    ds: ds(u)?,
                    key: Blob(&k),
                    value: Blob(&v),
                },
            )
        }
        3 => send(
            who,
            &Op::Remove {
                ds: ds(u)?,
                key: Blob(&key(u)?),
            },
        ),
        4 => {
            // Repeated keys (reply amplification) and sometimes very many.
            let distinct: Vec<Vec<u8>> = (0..u.int_in_range(1usize..=4)?)
                .map(|_| key(u))
                .collect::<Result<_>>()?;
            let n = *u.choose(&[1usize, 8, 300, 5000, 70_000])?;
            let keys = (0..n)
                .map(|i| Blob(&distinct[i % distinct.len()]))
                .collect();
            send(who, &Op::ReadMany { ds: ds(u)?, keys })
        }
        5 => {
            let n = u.int_in_range(0usize..=64)?;
            let items: Vec<(Vec<u8>, Vec<u8>)> = (0..n)
                .map(|_| Ok((key(u)?, value(u)?)))
                .collect::<Result<_>>()?;
            let items = items.iter().map(|(k, v)| (Blob(k), Blob(v))).collect();
            send(who, &Op::WriteMany { ds: ds(u)?, items })
        }
        6 => {
            let keys: Vec<Vec<u8>> = (0..u.int_in_range(0usize..=64)?)
                .map(|_| key(u))
                .collect::<Result<_>>()?;
            let keys = keys.iter().map(|k| Blob(k)).collect();
            send(who, &Op::RemoveMany { ds: ds(u)?, keys })
        }
        7 => construct(u, who, tokens)?,
        8 => send(who, &Op::Destruct { ds: ds(u)? }),
        9 | 10 => {
            let ds = ds(u)?;
            let (opcode, input) = if u.arbitrary()? {
                vec::arbitrary_request(u, tokens)?
            } else {
                map_input(u)?
            };
            send(
                who,
                &Op::Compute {
                    ds,
                    opcode,
                    input: Blob(&input),
                },
            )
        }
        11 => {
            let after = if u.arbitrary()? { Some(key(u)?) } else { None };
            let op = Op::Keys {
                ds: ds(u)?,
                after: after.as_deref().map(Blob),
                limit: *u.choose(&[0, 1, 7, u32::MAX])?,
            };
            send(who, &op)
        }
        _ => send(who, *u.choose(&[&Op::Ping, &Op::StoredBytes, &Op::Stats])?),
    }
    Ok(())
}

/// A construction: a known device type with a token of the driver's (often another
/// client's), or bad parameters.
fn construct(u: &mut Unstructured<'_>, who: &Session, tokens: &[u128]) -> Result<()> {
    let device = *u.choose(&DEVICES)?;
    let params = match u.int_in_range(0u8..=3)? {
        0..=2 => u.choose(tokens)?.to_le_bytes().to_vec(),
        _ => bytes(u, 20)?,
    };
    send(
        who,
        &Op::Construct {
            ds: ds(u)?,
            device,
            params: Blob(&params),
        },
    );
    Ok(())
}

fn check(d: &Dispatcher, clients: &[Session; 2]) {
    let mut total = 0;
    for c in clients {
        assert!(
            c.charged_bytes() <= CLIENT_QUOTA,
            "a client beyond its quota"
        );
        assert!(
            c.stored_bytes() <= c.charged_bytes(),
            "stored beyond charged"
        );
        total += c.charged_bytes();
    }
    assert_eq!(
        d.charged_bytes(),
        total,
        "the pool disagrees with the clients"
    );
    assert!(total <= CAPACITY, "the server beyond its capacity");
}

/// Runs one random session from `data` (see the module docs); panics on a finding.
///
/// # Examples
///
/// ```
/// aifm_server::fuzzing::drive(b"any bytes at all make a session");
/// ```
pub fn drive(data: &[u8]) {
    thread_local! {
        /// One server per thread, reused by every session on it: its pool must be back at
        /// zero after each.
        static SERVER: Dispatcher = Dispatcher::new(Config {
            capacity: CAPACITY,
            client_quota: Some(CLIENT_QUOTA),
            max_frame: MAX_FRAME,
            devices: vec![aifm_collections::register_devices],
            ..Config::default()
        })
        .expect("a valid configuration");
    }
    SERVER.with(|d| session(d, data));
}

fn session(d: &Dispatcher, data: &[u8]) {
    assert_eq!(d.charged_bytes(), 0, "charges left by an earlier session");
    let mut u = Unstructured::new(data);
    {
        let clients = [d.session(), d.session()];
        let tokens = [1u128, 2, u128::MAX];
        // Each client builds a vector, a second one, a map and a store; the second client
        // names the first one's tokens, so collisions across namespaces are the rule.
        for (c, who) in clients.iter().enumerate() {
            let ds_tokens = [(1u32, tokens[0]), (2, tokens[c + 1])];
            for (ds, token) in ds_tokens {
                send(
                    who,
                    &Op::Construct {
                        ds,
                        device: vec::DEVICE,
                        params: Blob(&token.to_le_bytes()),
                    },
                );
            }
            send(
                who,
                &Op::Construct {
                    ds: 3,
                    device: map::DEVICE,
                    params: Blob(b""),
                },
            );
            send(
                who,
                &Op::Construct {
                    ds: 4,
                    device: OBJECT_STORE_DEVICE,
                    params: Blob(b""),
                },
            );
        }
        check(d, &clients);
        while !u.is_empty() {
            if step(&mut u, &clients, &tokens).is_err() {
                break;
            }
            check(d, &clients);
        }
    }
    assert_eq!(d.charged_bytes(), 0, "charges left after every client left");
}
