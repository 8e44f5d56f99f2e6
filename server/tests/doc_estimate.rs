//! The document cache's budget is only as good as its estimate of each
//! document's memory (`server::sync::estimated_doc_bytes`). Here a counting
//! allocator measures the heap documents of several shapes really take,
//! loaded from a snapshot and built from their changes as the server holds
//! them, and the estimate must cover it without overstating it much: an
//! estimate too low lets memory outgrow `--doc-cache-mb`; one too high
//! evicts documents that fit (a 10,000-document catch-up loaded most
//! documents twice when it was about three times too high). What an
//! operation costs varies with its shape by about three times, so an
//! estimate from counts promises less than twice what a document takes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ROOT};
use server::sync::estimated_doc_bytes;
use shared::schema::DocKind;
use shared::{ClinicId, EntryId, PatientId, UserId, record};
use testkit::fixtures::glucose_result;

/// Bytes allocated and not yet freed. The only test in this binary, so
/// nothing else allocates while it measures.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        IN_USE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        IN_USE.fetch_add(new_size, Ordering::Relaxed);
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What a document is made of, one change per `per_change` items.
#[derive(Clone, Copy, Debug)]
enum Item {
    /// A lab result, as a clinic records it.
    Result,
    /// A string of this many bytes under a new key.
    Text(usize),
}

/// A stored document: its genesis and the changes after it, as the
/// server stores a catch-up (one snapshot, then a chunk).
struct Stored {
    whole: Vec<u8>,
    genesis: Vec<u8>,
    after: Vec<u8>,
}

fn make(item: Item, items: usize, per_change: usize) -> Stored {
    let clinic = ClinicId::mint();
    let kind = DocKind::ClinicalRecord { patient: PatientId::mint(), clinic };
    let mut doc = kind.genesis();
    let genesis = doc.save();
    let genesis_heads = doc.get_heads();
    doc.set_actor(ActorId::random());
    let mut n = 0;
    while n < items {
        let mut tx = doc.transaction();
        for _ in 0..per_change.min(items - n) {
            match item {
                Item::Result => {
                    let result =
                        glucose_result((clinic, "A Clinic"), UserId::mint(), "Dr. A", n as f64);
                    record::add(&mut tx, EntryId::mint(), &result).expect("add a result");
                }
                Item::Text(bytes) => {
                    let text: String =
                        (0..bytes).map(|i| char::from(b'a' + ((i * 7 + n) % 26) as u8)).collect();
                    tx.put(ROOT, format!("note{n}"), text).expect("put a string");
                }
            }
            n += 1;
        }
        tx.commit();
    }
    Stored { whole: doc.save(), genesis, after: doc.save_after(&genesis_heads) }
}

/// The heap `load` takes per document, over all of `stored`.
fn heap_per_doc(stored: &[Stored], load: impl Fn(&Stored) -> Automerge) -> (usize, Vec<Automerge>) {
    let before = IN_USE.load(Ordering::Relaxed);
    let docs: Vec<Automerge> = stored.iter().map(load).collect();
    let taken = IN_USE.load(Ordering::Relaxed).saturating_sub(before);
    (taken / stored.len(), docs)
}

#[test]
fn the_cache_estimate_covers_what_documents_take_and_less_than_twice_that() {
    const DOCS: usize = 40;
    let shapes = [
        ("genesis only", Item::Result, 0, 1),
        ("20 results, one change each", Item::Result, 20, 1),
        ("100 results, one change each", Item::Result, 100, 1),
        ("100 results in one change", Item::Result, 100, 100),
        ("10 strings of 4 KB", Item::Text(4096), 10, 1),
        ("200 strings of 100 B", Item::Text(100), 200, 1),
        ("2,000 strings of 16 B in one change", Item::Text(16), 2000, 2000),
    ];
    for (name, item, items, per_change) in shapes {
        let stored: Vec<Stored> = (0..DOCS).map(|_| make(item, items, per_change)).collect();
        let (loaded, docs) =
            heap_per_doc(&stored, |s| Automerge::load(&s.whole).expect("load the snapshot"));
        let estimate = estimated_doc_bytes(&docs[0]);
        drop(docs);
        let (built, docs) = heap_per_doc(&stored, |s| {
            let mut doc = Automerge::load(&s.genesis).expect("load the genesis");
            doc.load_incremental(&s.after).expect("apply the changes");
            doc
        });
        assert_eq!(estimated_doc_bytes(&docs[0]), estimate, "{name}: same document");
        drop(docs);
        let heap = loaded.max(built);
        eprintln!("{name}: heap {loaded} B loaded, {built} B built; estimate {estimate} B");
        assert!(
            estimate >= heap,
            "{name}: the estimate {estimate} B is below the {heap} B it takes"
        );
        assert!(
            estimate < 2 * heap,
            "{name}: the estimate {estimate} B is twice the {heap} B it takes, or more"
        );
    }
}
