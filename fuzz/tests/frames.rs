//! The fuzzer as part of the test suite: every committed corpus input
//! (real frames and what earlier runs found) is handled without a panic
//! and within bounds, and a few seconds of fresh inputs are too. The long
//! run is `cargo run -p fuzz --bin fuzz-frames` (CI: `.ci/run`).

use std::time::{Duration, Instant};

use fuzz::mutate::{self, Rng};
use fuzz::{Bounds, Counting, Outcome, World, check, corpus_dir, load_corpus, run};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn the_corpus_is_handled_within_bounds() {
    let world = World::new();
    let corpus = load_corpus(&corpus_dir());
    assert!(corpus.len() >= 20, "the corpus holds the seed frames");
    for (name, input) in &corpus {
        let cost = check(&world, input, &Bounds::default())
            .unwrap_or_else(|failure| panic!("{name}: {failure}"));
        assert!(
            !matches!(cost.outcome, Outcome::Malformed) || name.starts_with("found-"),
            "{name}: seeds are protocol messages"
        );
    }
}

/// The seed frames do what they were made to: real edits are accepted or
/// refused by the right rule, and the attacks are refused on their bytes.
#[test]
fn seed_frames_take_the_paths_they_were_made_for() {
    let world = World::new();
    let outcome = |name: &str| {
        let (_, bytes) = world
            .seeds()
            .into_iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no seed {name}"));
        run(&world, &bytes)
    };
    for accepted in [
        "provider-adds-result",
        "provider-marks-result-entered-in-error",
        "provider-stops-prescription",
        "patient-sends-message",
        "provider-marks-message-read",
        "patient-requests-refill",
        "provider-approves-refill",
        "patient-updates-demographics",
    ] {
        assert_eq!(outcome(accepted), Outcome::Accepted { applied: true }, "{accepted}");
    }
    assert_eq!(outcome("patient-edits-result"), Outcome::Rejected("not-permitted"));
    for attack in [
        "attack-bloom-probes",
        "attack-bloom-zero-bits",
        "attack-bloom-many-haves",
        "attack-document-chunk",
    ] {
        assert!(matches!(outcome(attack), Outcome::Refused(_)), "{attack}: {:?}", outcome(attack));
    }
    assert!(
        matches!(outcome("bloom-at-the-limits"), Outcome::Heads { .. }),
        "{:?}",
        outcome("bloom-at-the-limits")
    );
    // The server catches this one and closes the connection (1007).
    let panics = "automerge-panics-unknown-other-actor";
    assert_eq!(outcome(panics), Outcome::Corrupt("automerge panicked"), "{panics}");
    // A new actor's first change numbered 2 skips a sequence number: the
    // write policy refuses it before Automerge (which panics on it) sees it.
    let skips = "automerge-panics-new-actor-at-seq-2";
    assert_eq!(outcome(skips), Outcome::Rejected("schema"), "{skips}");
    assert_eq!(outcome("change-numbered-0"), Outcome::Rejected("schema"));
}

#[test]
fn the_world_is_readable_by_the_app() {
    let world = World::new();
    for (kind, doc) in &world.docs {
        fuzz::readable(kind, doc).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
    }
}

#[test]
fn a_few_seconds_of_fresh_inputs_are_handled_within_bounds() {
    let world = World::new();
    let corpus: Vec<Vec<u8>> = load_corpus(&corpus_dir()).into_iter().map(|(_, b)| b).collect();
    let seconds = std::env::var("FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let seed = 0x5eed_0000 + u64::from(std::process::id());
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let mut runs = 0;
    while started.elapsed() < Duration::from_secs(seconds) {
        let input = &corpus[rng.below(corpus.len())];
        let mutated = mutate::mutate(&mut rng, &world, &corpus, input);
        if let Err(failure) = check(&world, &mutated, &Bounds::default()) {
            let path = corpus_dir()
                .parent()
                .unwrap()
                .join("artifacts")
                .join(format!("failure-{}.bin", fuzz::name_of(&mutated)));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &mutated).unwrap();
            panic!("seed {seed}: {failure}; input written to {}", path.display());
        }
        runs += 1;
    }
    assert!(runs > 10, "{runs} inputs");
}
