//! The Redis Cluster backend against a real cluster (3 masters + 3 replicas on loopback,
//! started by `scripts/redis-cluster.sh`): reads, writes, batches, removes, accounting,
//! structures, namespaces, clean-up, and typed errors for bad addresses and a dead cluster.

mod support;

use aifm_core::backend::redis::{RedisClusterBackend, RedisClusterBuilder};
use aifm_core::backend::{Backend, OBJECT_STORE, OBJECT_STORE_DEVICE};
use aifm_core::Error;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::redis_cluster::TestCluster;

#[test]
fn backend_on_a_cluster() {
    let cluster = TestCluster::start(17110);
    let far = aifm_core::backend::connect(&cluster.addr).expect("connect");
    let first = format!("redis://127.0.0.1:{}", cluster.base);
    assert!(far.name().starts_with(&first), "{}", far.name());

    // One object: write, read, overwrite, remove, with the client's byte count.
    assert_eq!(far.read(OBJECT_STORE, b"k").unwrap(), None);
    far.write(OBJECT_STORE, b"k", b"value").unwrap();
    assert_eq!(
        far.read(OBJECT_STORE, b"k").unwrap().as_deref(),
        Some(&b"value"[..])
    );
    assert_eq!(far.stored_bytes(), 6);
    far.write(OBJECT_STORE, b"k", b"v2").unwrap();
    assert_eq!(far.stored_bytes(), 3);
    far.write(OBJECT_STORE, b"empty", b"").unwrap();
    far.write(OBJECT_STORE, b"empty", b"").unwrap();
    assert_eq!(far.stored_bytes(), 8);
    assert!(far.remove(OBJECT_STORE, b"k").unwrap());
    assert!(!far.remove(OBJECT_STORE, b"k").unwrap());
    assert!(far.remove(OBJECT_STORE, b"empty").unwrap());
    assert_eq!(far.stored_bytes(), 0);

    // Batches spread over every master (one-byte groups) come back in order.
    let keys: Vec<[u8; 8]> = (0..2000u64).map(|i| i.to_le_bytes()).collect();
    let values: Vec<Vec<u8>> = (0..2000usize).map(|i| vec![i as u8; i % 300]).collect();
    let items: Vec<(&[u8], &[u8])> = keys
        .iter()
        .map(|k| &k[..])
        .zip(values.iter().map(|v| &v[..]))
        .collect();
    far.write_many(OBJECT_STORE, &items).unwrap();
    let expect: u64 = items.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
    assert_eq!(far.stored_bytes(), expect);
    let mut refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    refs.push(b"absent");
    let got = far.read_many(OBJECT_STORE, &refs).unwrap();
    assert_eq!(got.len(), 2001);
    assert_eq!(got[2000], None);
    // Key listing (what a rebuild or a client-side device scan uses): every key, sorted.
    let mut sorted: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
    sorted.sort_unstable();
    assert_eq!(far.keys(OBJECT_STORE).unwrap(), sorted);
    for (i, v) in got[..2000].iter().enumerate() {
        assert_eq!(v.as_deref(), Some(&values[i][..]), "object {i}");
    }
    far.remove_many(OBJECT_STORE, &refs[..1000]).unwrap();
    assert_eq!(
        far.read_many(OBJECT_STORE, &refs[..1000]).unwrap(),
        vec![None; 1000]
    );
    far.remove_many(OBJECT_STORE, &refs[1000..]).unwrap();
    assert_eq!(far.stored_bytes(), 0);
    assert_eq!(cluster.keys(), 0, "every object removed from the cluster");

    // Structures: unknown ones and unknown devices are typed errors; destruct frees.
    assert!(matches!(far.read(9, b"k"), Err(Error::UnknownStructure(9))));
    assert!(matches!(
        far.construct(9, "no.such.device", &[]),
        Err(Error::UnknownDevice(_))
    ));
    far.construct(9, OBJECT_STORE_DEVICE, &[]).unwrap();
    far.construct(9, OBJECT_STORE_DEVICE, &[]).unwrap(); // idempotent
    for i in 0..300u32 {
        far.write(9, &i.to_le_bytes(), b"xyz").unwrap();
    }
    assert_eq!(far.compute(9, 1, &[]), Err(Error::UnknownOpcode(1)));
    assert_eq!(cluster.keys(), 300);
    far.destruct(9).unwrap();
    assert_eq!(cluster.keys(), 0);
    assert_eq!(far.stored_bytes(), 0);
    assert!(far.destruct(OBJECT_STORE).is_err());
    // A reused id starts empty.
    far.construct(9, OBJECT_STORE_DEVICE, &[]).unwrap();
    assert_eq!(far.read(9, &0u32.to_le_bytes()).unwrap(), None);

    // The collections' offloaded operations run in the client, over the cluster, and agree
    // with their local code.
    {
        use aifm_collections::vec::Aggregate;
        use aifm_collections::{Exec, RemHashMap, RemVec};
        let rt = aifm_core::Runtime::builder()
            .local_memory(2 << 20)
            .backend(RedisClusterBackend::connect(&cluster.addr).unwrap())
            .build()
            .unwrap();
        let n = 200_000u64;
        let mut v: RemVec<u64> = RemVec::new_in(&rt);
        v.extend((0..n).map(|i| (i * 7919) % 10_007));
        let mut keys: RemVec<u16> = RemVec::new_in(&rt);
        keys.extend((0..n).map(|i| (i % 97) as u16));
        let mut perm: RemVec<u64> = RemVec::new_in(&rt);
        perm.extend((0..n).map(|i| (i * 65_537) % n));
        rt.evacuate_now();
        assert_eq!(
            v.try_sum(Exec::Remote).unwrap(),
            v.try_sum(Exec::Local).unwrap()
        );
        assert_eq!(
            v.try_group_by(&keys, Aggregate::Mean, Exec::Remote)
                .unwrap(),
            v.try_group_by(&keys, Aggregate::Mean, Exec::Local).unwrap()
        );
        let remote = v.try_permute(&perm, Exec::Remote).unwrap();
        let local = v.try_permute(&perm, Exec::Local).unwrap();
        assert_eq!(
            remote.iter().collect::<Vec<_>>(),
            local.iter().collect::<Vec<_>>()
        );
        let remote = v.try_copy_range(1000..150_000, Exec::Remote).unwrap();
        assert_eq!(
            remote.iter().collect::<Vec<_>>(),
            v.iter().skip(1000).take(149_000).collect::<Vec<_>>()
        );
        // A striped vector's per-shard requests run client-side too.
        let mut striped: RemVec<u64> = RemVec::striped_in(&rt);
        striped.extend(v.iter());
        rt.evacuate_now();
        for agg in [
            Aggregate::Sum,
            Aggregate::Min,
            Aggregate::Max,
            Aggregate::Mean,
        ] {
            assert_eq!(
                striped.try_aggregate(agg, Exec::Remote).unwrap(),
                v.try_aggregate(agg, Exec::Local).unwrap(),
                "{agg:?}"
            );
        }
        let map: RemHashMap<u64, u64> = RemHashMap::new_in(&rt);
        for k in 0..50_000u64 {
            map.insert(k, k + 1);
        }
        rt.evacuate_now();
        assert!(map.local_len() < 50_000, "pairs went to far memory");
        map.retain(|k, _| k % 3 != 0);
        assert_eq!(map.len(), 33_333);
        let mut pairs: Vec<(u64, u64)> = map.iter().collect();
        pairs.sort_unstable();
        assert_eq!(
            pairs,
            (0..50_000)
                .filter(|k| k % 3 != 0)
                .map(|k| (k, k + 1))
                .collect::<Vec<_>>()
        );
        map.clear();
        assert_eq!(map.iter().count(), 0);
        assert_eq!(map.get_cloned(&1), None);
    }
    assert_eq!(
        cluster.keys(),
        0,
        "the runtime's backend deleted its keys when dropped"
    );

    // Two clients share the cluster without seeing each other; dropping one deletes its keys.
    let other = RedisClusterBuilder::new(&cluster.addr)
        .namespace("other-client")
        .build()
        .unwrap();
    assert_eq!(other.namespace(), "other-client");
    far.write(OBJECT_STORE, b"same", b"mine").unwrap();
    other.write(OBJECT_STORE, b"same", b"theirs").unwrap();
    assert_eq!(
        far.read(OBJECT_STORE, b"same").unwrap().as_deref(),
        Some(&b"mine"[..])
    );
    assert_eq!(
        other.read(OBJECT_STORE, b"same").unwrap().as_deref(),
        Some(&b"theirs"[..])
    );
    assert_eq!(other.stats().masters, 3);
    assert_eq!(other.stats().masters_without_replica, 0);
    drop(other);
    assert_eq!(cluster.keys(), 1);
    drop(far);
    assert_eq!(cluster.keys(), 0);

    // A manual failover (a replica takes over its master's slots, gracefully): the client's
    // slot map is stale, the old master answers MOVED, and the client follows.
    let far = RedisClusterBackend::connect(&cluster.addr).unwrap();
    let items: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (&k[..], &b"before"[..])).collect();
    far.write_many(OBJECT_STORE, &items).unwrap();
    let old_masters = cluster.masters();
    let replica = (cluster.base..cluster.base + 6)
        .find(|p| !old_masters.contains(p))
        .unwrap();
    assert_eq!(cluster.cli(replica, &["cluster", "failover"]).trim(), "OK");
    for _ in 0..200 {
        if cluster.masters().contains(&replica) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        cluster.masters().contains(&replica),
        "the manual failover happened"
    );
    let got = far.read_many(OBJECT_STORE, &refs[..2000]).unwrap();
    assert!(got.iter().all(|v| v.as_deref() == Some(&b"before"[..])));
    assert!(
        far.stats().retried_rounds > 0,
        "redirected: {:?}",
        far.stats()
    );
    far.remove_many(OBJECT_STORE, &refs[..2000]).unwrap();
    assert_eq!(far.stored_bytes(), 0);
    drop(far);

    // A replica dies: its master's changes are acknowledged by the master alone (counted),
    // after one short WAIT; nothing fails.
    let far = RedisClusterBackend::connect(&cluster.addr).unwrap();
    let replica = (cluster.base..cluster.base + 6)
        .find(|p| !cluster.masters().contains(p))
        .unwrap();
    cluster.kill(replica);
    let items: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (&k[..], &b"after"[..])).collect();
    far.write_many(OBJECT_STORE, &items).unwrap();
    assert_eq!(
        far.read(OBJECT_STORE, &keys[7]).unwrap().as_deref(),
        Some(&b"after"[..])
    );
    let s = far.stats();
    assert!(s.unreplicated_batches > 0, "{s:?}");
    drop(far);

    // A dead cluster: calls fail with a typed error once the deadline passes.
    let far = RedisClusterBuilder::new(&cluster.addr)
        .failover_deadline(Duration::from_millis(300))
        .build()
        .unwrap();
    far.write(OBJECT_STORE, b"k", b"v").unwrap();
    for p in cluster.base..cluster.base + 6 {
        cluster.stop_node(p);
    }
    let e = far.read(OBJECT_STORE, b"k").unwrap_err();
    assert!(
        matches!(e, Error::Disconnected(_) | Error::Timeout),
        "{e:?}"
    );
    let e = far.write(OBJECT_STORE, b"k", b"w").unwrap_err();
    assert!(
        matches!(e, Error::Disconnected(_) | Error::Timeout),
        "{e:?}"
    );
    let e = RedisClusterBackend::connect(&cluster.addr).unwrap_err();
    assert!(e.is_disconnected(), "{e:?}");
}

#[test]
fn bad_addresses_are_typed_errors() {
    for bad in [
        "redis://",
        "redis://,",
        "redis://localhost",
        "redis://h:99999",
        "redis://:7000",
    ] {
        let e = aifm_core::backend::connect(bad).err().unwrap();
        assert!(matches!(e, Error::Config(_)), "{bad}: {e:?}");
    }
    let e = aifm_core::backend::connect("redis://127.0.0.1:1")
        .err()
        .unwrap();
    assert!(e.is_disconnected(), "{e:?}");
    let e = RedisClusterBuilder::new("127.0.0.1:1")
        .namespace("")
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e:?}");

    // A Redis that is not a cluster node.
    let mut plain = Command::new("redis-server")
        .args([
            "--port",
            "17129",
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (apt-get install redis-server)");
    let mut e = None;
    for _ in 0..100 {
        match RedisClusterBackend::connect("redis://127.0.0.1:17129") {
            Err(Error::Disconnected(_)) => std::thread::sleep(Duration::from_millis(50)),
            other => {
                e = other.err();
                break;
            }
        }
    }
    let _ = plain.kill();
    let _ = plain.wait();
    assert!(matches!(e, Some(Error::Config(_))), "{e:?}");
}
