//! Root integration tests of the batch read of hash maps (src/ebpf/batch.rs), which the
//! memory sampler reads the RSS map with: on maps shaped like it, filled here, it must
//! return exactly what was put in and what aya's entry-by-entry walk returns, on whatever
//! kernel runs it (the kernel matrix runs this file in its guests too).
mod support;

use aya::maps::{HashMap, MapData};
use hupwatch::ebpf::batch::HashBatch;
use probe_common::RssValue;

/// The RSS map's size in probe-ebpf/src/maps.rs.
const RSS_MAP_ENTRIES: u32 = 65_536;

/// An RSS map of its own, with `count` processes in it, and what was put in, by pid.
fn filled(max_entries: u32, count: u32) -> (HashMap<MapData, u32, RssValue>, Vec<(u32, RssValue)>) {
    support::require_root();
    let mut map = HashMap::<MapData, u32, RssValue>::create(max_entries, 0)
        .expect("creating a BPF hash map (root, and a kernel with BPF)");
    let inserted: Vec<(u32, RssValue)> = (0..count)
        .map(|i| {
            // Pids as they come, spread over pid space; every field of every value differs.
            let pid = 300 + i * 7;
            let page = u64::from(i) * 4096;
            let value = RssValue {
                file: page + 1,
                anon: page + 2,
                shmem: page + 3,
                peak: page * 2,
                swap: page + 5,
            };
            (pid, value)
        })
        .collect();
    for (pid, value) in &inserted {
        map.insert(pid, value, 0)
            .expect("inserting into the test map");
    }
    (map, inserted)
}

fn sorted(mut entries: Vec<(u32, RssValue)>) -> Vec<(u32, RssValue)> {
    entries.sort_by_key(|&(pid, _)| pid);
    entries
}

fn one_by_one(map: &HashMap<MapData, u32, RssValue>) -> Vec<(u32, RssValue)> {
    sorted(
        map.iter()
            .collect::<Result<_, _>>()
            .expect("reading the map entry by entry"),
    )
}

#[test]
fn a_batch_read_returns_every_entry_the_walk_returns() {
    let (map, inserted) = filled(RSS_MAP_ENTRIES, 5_000);
    let mut batch = HashBatch::new(1024);
    let read = sorted(batch.read(&map).expect("a batch read of the map"));
    assert_eq!(read.len(), inserted.len(), "entries read in batches");
    assert_eq!(read, inserted, "the batch read returns what was put in");
    assert_eq!(
        read,
        one_by_one(&map),
        "and what the entry-by-entry walk returns"
    );

    // The buffers kept from the first read serve the second, after processes came and went.
    let mut map = map;
    for (pid, _) in inserted.iter().step_by(3) {
        map.remove(pid).expect("removing an entry");
    }
    let again = sorted(batch.read(&map).expect("a second batch read"));
    assert_eq!(again.len(), inserted.len() - inserted.len().div_ceil(3));
    assert_eq!(
        again,
        one_by_one(&map),
        "the second read matches the walk too"
    );
}

#[test]
fn a_bucket_larger_than_the_buffers_grows_them() {
    // As many entries as buckets: some buckets hold two or more, which a one-entry buffer
    // cannot take (ENOSPC).
    let (map, inserted) = filled(4_096, 4_096);
    let mut batch = HashBatch::new(1);
    let read = sorted(batch.read(&map).expect("a batch read of the map"));
    assert!(
        batch.capacity() > 1,
        "no bucket held two entries, so the growth path was not taken"
    );
    assert_eq!(read, inserted, "the batch read returns what was put in");
    assert_eq!(
        read,
        one_by_one(&map),
        "and what the entry-by-entry walk returns"
    );
}

#[test]
fn an_empty_map_reads_as_empty() {
    let (map, _) = filled(RSS_MAP_ENTRIES, 0);
    let read = HashBatch::new(1024)
        .read(&map)
        .expect("a batch read of an empty map");
    assert_eq!(read, Vec::new());
}
