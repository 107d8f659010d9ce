//! Lookups by a borrowed form of the key, as `HashMap` allows (`m.get("ada")` on a map of
//! `String` keys): a compile-time property, checked by compiling this file.

use aifm_collections::RemHashMap;

#[test]
fn lookups_by_borrowed_keys() {
    let m: RemHashMap<String, u32> = RemHashMap::new();
    m.insert("ada".to_string(), 36);
    assert_eq!(*m.get("ada").unwrap(), 36);
    assert!(m.contains_key("ada"));
    *m.get_mut("ada").unwrap() += 1;
    assert_eq!(m.get_cloned("ada"), Some(37));
    assert_eq!(m.remove("ada"), Some(37));
    assert!(m.get("ada").is_none());
}

#[test]
fn borrowed_lookups_reach_far_pairs() {
    let rt = aifm_core::Runtime::builder()
        .local_memory(1 << 20)
        .build()
        .unwrap();
    let m: RemHashMap<String, [u64; 8]> = RemHashMap::new_in(&rt);
    for i in 0..20_000u64 {
        m.insert(format!("k{i}"), [i; 8]);
    }
    rt.evacuate_now();
    assert!(m.local_len() < m.len());
    for i in (0..20_000u64).step_by(97) {
        assert_eq!(m.get(format!("k{i}").as_str()).unwrap()[0], i);
    }
}
