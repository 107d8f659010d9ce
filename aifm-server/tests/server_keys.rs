//! Key listing over the wire: paged so that no reply outgrows a frame, complete and sorted for
//! every device that stores objects, and typed errors for bad requests.

mod common;

use aifm_core::backend::{Backend, OBJECT_STORE};
use aifm_core::wire::{encode_request, Blob, Op, LEN_PREFIX};
use aifm_core::Error;
use common::{Raw, Said, ServerProc};

fn sorted(mut keys: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    keys.sort_unstable();
    keys
}

#[test]
fn a_listing_larger_than_a_frame_comes_back_whole_in_pages() {
    // 4 KiB frames: a page holds at most ~190 of these 16-byte keys, so 20 000 keys take
    // more than a hundred pages.
    let server = ServerProc::start(&["--max-frame", "4KiB"]);
    let far = server.client();
    let keys: Vec<Vec<u8>> = (0..20_000u64)
        .map(|i| {
            (i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                .to_be_bytes()
                .repeat(2)
        })
        .collect();
    let items: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (&k[..], &b"v"[..])).collect();
    far.write_many(OBJECT_STORE, &items).unwrap();
    let before = far.server_stats().unwrap().requests.other;
    let listed = far.keys(OBJECT_STORE).unwrap();
    assert_eq!(listed, sorted(keys.clone()));
    let pages = far.server_stats().unwrap().requests.other - before - 1;
    assert!(pages > 100, "{pages} pages");
    // Removed keys disappear; an empty structure lists nothing.
    let gone: Vec<&[u8]> = keys[..10_000].iter().map(|k| &k[..]).collect();
    far.remove_many(OBJECT_STORE, &gone).unwrap();
    assert_eq!(
        far.keys(OBJECT_STORE).unwrap(),
        sorted(keys[10_000..].to_vec())
    );
    far.construct(3, aifm_core::backend::OBJECT_STORE_DEVICE, &[])
        .unwrap();
    assert!(far.keys(3).unwrap().is_empty());
    assert_eq!(far.keys(9).unwrap_err(), Error::UnknownStructure(9));
}

#[test]
fn collection_devices_list_their_keys() {
    let server = ServerProc::start(&[]);
    let far = server.client();
    // A hash map device: keys carry a 2-byte shard prefix.
    far.construct(1, aifm_collections::hashmap::DEVICE, &[])
        .unwrap();
    let map_keys: Vec<Vec<u8>> = (0..3000u32)
        .map(|i| {
            let mut k = ((i % 300) as u16).to_le_bytes().to_vec();
            k.extend_from_slice(&i.to_le_bytes());
            k
        })
        .collect();
    for k in &map_keys {
        far.write(1, k, b"pair").unwrap();
    }
    assert_eq!(far.keys(1).unwrap(), sorted(map_keys.clone()));
    // A vector device: 8-byte chunk indices; its parameter is a 16-byte token.
    far.construct(2, aifm_collections::vec::DEVICE, &[7; 16])
        .unwrap();
    let chunk_keys: Vec<Vec<u8>> = (0..5000u64).map(|i| i.to_le_bytes().to_vec()).collect();
    for k in &chunk_keys {
        far.write(2, k, &[1; 64]).unwrap();
    }
    assert_eq!(far.keys(2).unwrap(), sorted(chunk_keys));
}

fn request(id: u64, op: &Op<'_>) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_request(id, op, &mut buf, 1 << 20).unwrap();
    buf.split_off(LEN_PREFIX)
}

#[test]
fn malformed_key_listings_get_typed_errors_and_the_connection_survives() {
    let server = ServerProc::start(&[]);
    let mut raw = Raw::login(&server.addr);
    // A limit of zero.
    raw.send_frame(&request(
        1,
        &Op::Keys {
            ds: 0,
            after: None,
            limit: 0,
        },
    ));
    assert!(matches!(raw.recv(), Said::Err(1, Error::Protocol(_))));
    // A structure that does not exist.
    raw.send_frame(&request(
        2,
        &Op::Keys {
            ds: 42,
            after: None,
            limit: 10,
        },
    ));
    assert_eq!(raw.recv(), Said::Err(2, Error::UnknownStructure(42)));
    // Truncated: the `after` key's length runs past the end of the frame.
    let mut body = request(
        3,
        &Op::Keys {
            ds: 0,
            after: Some(Blob(b"abc")),
            limit: 10,
        },
    );
    body.truncate(body.len() - 2);
    raw.send_frame(&body);
    assert!(matches!(raw.recv(), Said::Err(3, Error::Protocol(_))));
    // Still serving.
    raw.send_frame(&request(
        4,
        &Op::Keys {
            ds: 0,
            after: None,
            limit: 10,
        },
    ));
    assert_eq!(raw.recv(), Said::Ok(4, "Keys([])".into()));
}
