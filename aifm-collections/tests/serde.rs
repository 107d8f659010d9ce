//! Every collection serializes like its std twin (feature `serde`), evicted parts included.
#![cfg(feature = "serde")]

use aifm_collections::{RemHashMap, RemList, RemQueue, RemVec};
use aifm_core::codec::{decode_serde, encode_serde};
use std::collections::{HashMap, LinkedList, VecDeque};

fn bytes<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    encode_serde(v, &mut out).unwrap();
    out
}

#[test]
fn collections_serialize_like_their_std_twins() {
    let v: RemVec<u32> = (0..10_000).collect();
    assert_eq!(bytes(&v), bytes(&(0..10_000).collect::<Vec<u32>>()));
    let back: RemVec<u32> = decode_serde(&bytes(&v)).unwrap();
    assert_eq!(back, v);

    let q: RemQueue<u32> = (0..5_000).collect();
    assert_eq!(bytes(&q), bytes(&(0..5_000).collect::<VecDeque<u32>>()));
    let back: RemQueue<u32> = decode_serde(&bytes(&q)).unwrap();
    assert_eq!(
        back.iter().collect::<Vec<_>>(),
        (0..5_000).collect::<Vec<_>>()
    );

    let l: RemList<u32> = (0..5_000).collect();
    assert_eq!(bytes(&l), bytes(&(0..5_000).collect::<LinkedList<u32>>()));
    let back: RemList<u32> = decode_serde(&bytes(&l)).unwrap();
    assert_eq!(
        back.iter().collect::<Vec<_>>(),
        (0..5_000).collect::<Vec<_>>()
    );

    let m: RemHashMap<u32, String> = (0..2_000).map(|i| (i, format!("v{i}"))).collect();
    m.runtime().evacuate_now(); // some pairs now live only in far memory
    let std_map: HashMap<u32, String> = decode_serde(&bytes(&m)).unwrap();
    assert_eq!(std_map.len(), 2_000);
    assert!(std_map.iter().all(|(k, v)| *v == format!("v{k}")));
    let back: RemHashMap<u32, String> = decode_serde(&bytes(&m)).unwrap();
    assert_eq!(back.len(), 2_000);
    assert_eq!(back.get_cloned(&1_999).as_deref(), Some("v1999"));
}
