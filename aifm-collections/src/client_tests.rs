//! The client-side devices against the server devices: the same requests on the same far
//! objects must give byte-identical replies, and changes must leave the same objects.

use aifm_core::engine::client::{ClientDeviceRegistry, FarObjects};
use aifm_core::engine::{Quota, RemoteDevice};
use aifm_core::sync::MutexExt;
use aifm_core::Result;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

type Objects = BTreeMap<Vec<u8>, Vec<u8>>;
type Structures = Vec<(String, Vec<u8>, Arc<Mutex<Objects>>)>;

/// Far structures in this process, by (device, params).
#[derive(Default)]
struct MemFar {
    structures: Mutex<Structures>,
}

impl MemFar {
    fn add(&self, device: &str, params: &[u8]) -> Arc<Mutex<Objects>> {
        let o = Arc::new(Mutex::new(Objects::new()));
        self.structures
            .locked()
            .push((device.into(), params.into(), o.clone()));
        o
    }
}

struct View<'a> {
    far: &'a MemFar,
    objects: Arc<Mutex<Objects>>,
}

impl FarObjects for View<'_> {
    fn read_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        let o = self.objects.locked();
        Ok(keys.iter().map(|k| o.get(*k).cloned()).collect())
    }
    fn remove_many(&self, keys: &[&[u8]]) -> Result<()> {
        let mut o = self.objects.locked();
        for k in keys {
            o.remove(*k);
        }
        Ok(())
    }
    fn keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        let o = self.objects.locked();
        Ok(o.keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }
    fn find(&self, device: &str, params: &[u8]) -> Result<Option<Box<dyn FarObjects + '_>>> {
        let s = self.far.structures.locked();
        Ok(s.iter()
            .find(|(d, p, _)| d == device && p == params)
            .map(|(_, _, o)| {
                Box::new(View {
                    far: self.far,
                    objects: o.clone(),
                }) as Box<dyn FarObjects + '_>
            }))
    }
}

fn registry() -> ClientDeviceRegistry {
    let r = ClientDeviceRegistry::default();
    crate::register_client_devices(&r);
    r
}

mod vec {
    use super::*;
    use crate::vec::device::{self, Other, Request, Shape, OP};
    use crate::vec::ops::{Aggregate, NumKind};

    struct Pair {
        device: Box<dyn RemoteDevice>,
        objects: Arc<Mutex<Objects>>,
        token: u128,
        shape: Shape,
    }

    thread_local! {
        /// One namespace's quota per test: its vectors find each other by token in it.
        static QUOTA: Arc<Quota> = Arc::new(Quota::new(u64::MAX));
    }

    /// A vector of `values` stored both in a server device and in `far`.
    fn vector(far: &MemFar, token: u128, values: &[u64], chunk_len: u64) -> Pair {
        let device = device::factory(&token.to_le_bytes(), QUOTA.with(Arc::clone)).unwrap();
        let objects = far.add(device::DEVICE, &token.to_le_bytes());
        for (i, chunk) in values.chunks(chunk_len as usize).enumerate() {
            let bytes: Vec<u8> = chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
            let key = (i as u64).to_le_bytes();
            device.write(&key, &bytes).unwrap();
            objects.locked().insert(key.to_vec(), bytes);
        }
        let shape = Shape {
            elem: 8,
            chunk_len,
            len: values.len() as u64,
        };
        Pair {
            device,
            objects,
            token,
            shape,
        }
    }

    fn both(far: &MemFar, p: &Pair, req: &Request) -> (Result<Vec<u8>>, Result<Vec<u8>>) {
        let mut input = Vec::new();
        aifm_core::codec::encode_serde(req, &mut input).unwrap();
        let client = registry()
            .create(device::DEVICE, &p.token.to_le_bytes())
            .unwrap();
        let view = View {
            far,
            objects: p.objects.clone(),
        };
        (
            p.device.compute(OP, &input),
            client.compute(&view, OP, &input),
        )
    }

    #[test]
    fn every_request_answers_as_the_device_does() {
        let far = MemFar::default();
        let n = 5000u64;
        let values: Vec<u64> = (0..n).map(|i| (i * 7919) % 1013).collect();
        let v = vector(&far, 11, &values, 37);
        // A permutation as an index vector (other chunk length), and group keys.
        let perm: Vec<u64> = (0..n).map(|i| (i * 17) % n).collect();
        let idx = vector(&far, 22, &perm, 512);
        let keys: Vec<u64> = (0..n).map(|i| i % 13).collect();
        let ks = vector(&far, 33, &keys, 100);
        let other = |p: &Pair| Other {
            token: p.token,
            shape: p.shape,
        };
        let requests = vec![
            Request::Aggregate {
                kind: NumKind::U64,
                agg: Aggregate::Sum,
                shape: v.shape,
            },
            Request::Aggregate {
                kind: NumKind::U64,
                agg: Aggregate::Median,
                shape: v.shape,
            },
            Request::GroupBy {
                kind: NumKind::U64,
                agg: Aggregate::Mean,
                shape: v.shape,
                key_kind: NumKind::U64,
                keys: other(&ks),
            },
            Request::Gather {
                shape: v.shape,
                idx: other(&idx),
                from: 100,
                to: 4000,
            },
            Request::IsPermutation {
                idx: other(&idx),
                n,
            },
            Request::IsPermutation { idx: other(&ks), n },
            Request::CopyRange {
                shape: v.shape,
                from: 33,
                to: 4444,
            },
        ];
        for req in &requests {
            let (dev, client) = both(&far, &v, req);
            assert_eq!(dev.unwrap(), client.unwrap(), "{req:?}");
        }
        // Errors agree too: an out-of-range copy, and a missing chunk.
        let bad = Request::CopyRange {
            shape: v.shape,
            from: 0,
            to: n + 1,
        };
        let (dev, client) = both(&far, &v, &bad);
        assert_eq!(dev.unwrap_err(), client.unwrap_err());
        v.objects.locked().remove(&3u64.to_le_bytes()[..]);
        let (_, client) = both(&far, &v, &requests[0]);
        assert!(client
            .unwrap_err()
            .to_string()
            .contains("chunk 3 is not in far memory"));
        let client = registry().create(device::DEVICE, &[1, 2]);
        assert!(client.is_err(), "a token is 16 bytes");
    }
}

mod hashmap {
    use super::*;
    use crate::hashmap::device::{self, CLEAR, CLEAR_SHARD, SCAN, TAKE, TAKE_MANY};

    fn key(shard: u16, k: u32) -> Vec<u8> {
        [&shard.to_le_bytes()[..], &k.to_le_bytes()].concat()
    }

    #[test]
    fn every_opcode_answers_as_the_device_does() {
        let far = MemFar::default();
        let objects = far.add(device::DEVICE, &[]);
        let dev = device::factory(&[], Arc::new(Quota::new(u64::MAX))).unwrap();
        let client = registry().create(device::DEVICE, &[]).unwrap();
        assert_eq!(client.placement_prefix(), 2);
        let view = View {
            far: &far,
            objects: objects.clone(),
        };
        for shard in 0..8u16 {
            for k in 0..50u32 {
                let (kk, v) = (key(shard, k), vec![shard as u8; k as usize]);
                dev.write(&kk, &v).unwrap();
                objects.locked().insert(kk, v);
            }
        }
        let check = |op: u32, input: &[u8]| {
            let a = dev.compute(op, input);
            let b = client.compute(&view, op, input);
            assert_eq!(a, b, "opcode {op} on {input:?}");
        };
        check(TAKE, &key(1, 3));
        check(TAKE, &key(1, 3)); // gone now, on both sides
        check(TAKE, &[7]); // no shard prefix: the same error
        let mut many = Vec::new();
        let ks: Vec<Vec<u8>> = vec![key(2, 1), key(2, 99), key(5, 7)];
        aifm_core::codec::encode_serde(&ks, &mut many).unwrap();
        check(TAKE_MANY, &many);
        check(CLEAR_SHARD, &4u16.to_le_bytes());
        // SCAN lists in table order on the device: compare as sets.
        for shard in 0..9u16 {
            let decode = |r: Vec<u8>| {
                let mut pairs: Vec<(Vec<u8>, Vec<u8>)> =
                    aifm_core::codec::decode_serde(&r).unwrap();
                pairs.sort();
                pairs
            };
            let a = decode(dev.compute(SCAN, &shard.to_le_bytes()).unwrap());
            let b = decode(client.compute(&view, SCAN, &shard.to_le_bytes()).unwrap());
            assert_eq!(a, b, "shard {shard}");
            assert_eq!(a.len(), [50, 49, 49, 50, 0, 49, 50, 50, 0][shard as usize]);
        }
        check(CLEAR, &[]);
        assert!(objects.locked().is_empty());
        check(99, &[]);
    }
}
