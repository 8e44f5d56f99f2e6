//! `fuzz-frames`: runs the structured fuzzer for a bounded time.
//!
//! ```text
//! cargo run -p fuzz --bin fuzz-frames -- [--seconds N] [--seed S] [--save] [--seeds]
//!     --seconds N   stop after N seconds (default 60)
//!     --seed S      random seed (default: from the clock; printed)
//!     --save        add inputs that took a new path to fuzz/corpus/
//!     --seeds       (re)write the seed frames into fuzz/corpus/ and stop
//!     FILE...       run these inputs only (reproduce a failure)
//! ```
//!
//! Every corpus input runs first. An input that panics, runs too long or
//! allocates too much is written to `fuzz/artifacts/` and the run fails.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fuzz::mutate::{self, Rng};
use fuzz::{Bounds, Counting, World, check, corpus_dir, load_corpus, name_of};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn main() -> std::process::ExitCode {
    let mut seconds = 60u64;
    let mut seed = None;
    let mut save = false;
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = args.next().and_then(|s| s.parse().ok()).expect("--seconds N"),
            "--seed" => seed = Some(args.next().and_then(|s| s.parse().ok()).expect("--seed S")),
            "--save" => save = true,
            "--seeds" => return write_seeds(),
            other => files.push(other.to_owned()),
        }
    }
    let world = World::new();
    let bounds = Bounds::default();
    if !files.is_empty() {
        let mut failed = false;
        for file in files {
            let input = std::fs::read(&file).expect("read input");
            match check(&world, &input, &bounds) {
                Ok(cost) => println!(
                    "{file}: {} in {:?}, {} KiB",
                    cost.outcome.class(),
                    cost.time,
                    cost.allocated >> 10
                ),
                Err(failure) => {
                    println!("{file}: {failure}");
                    failed = true;
                }
            }
        }
        return if failed {
            std::process::ExitCode::FAILURE
        } else {
            std::process::ExitCode::SUCCESS
        };
    }
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
            as u64
    });
    println!("fuzz-frames: seed {seed}, {seconds} s");
    match fuzz_for(&world, &bounds, Duration::from_secs(seconds), seed, save) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(()) => std::process::ExitCode::FAILURE,
    }
}

fn write_seeds() -> std::process::ExitCode {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in World::new().seeds() {
        let path = dir.join(format!("seed-{name}-{}.bin", &name_of(&bytes)[..8]));
        std::fs::write(&path, &bytes).unwrap();
        println!("{}", path.display());
    }
    std::process::ExitCode::SUCCESS
}

fn fuzz_for(
    world: &World,
    bounds: &Bounds,
    budget: Duration,
    seed: u64,
    save: bool,
) -> Result<(), ()> {
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let mut corpus: Vec<Vec<u8>> =
        load_corpus(&corpus_dir()).into_iter().map(|(_, bytes)| bytes).collect();
    assert!(!corpus.is_empty(), "the corpus is empty: run with --seeds");
    let mut classes: BTreeMap<String, usize> = BTreeMap::new();
    let (mut runs, mut slowest, mut most) = (0usize, Duration::ZERO, 0usize);
    let mut run_one = |input: &[u8],
                       corpus: &mut Vec<Vec<u8>>,
                       from_corpus: bool|
     -> Result<(), ()> {
        match check(world, input, bounds) {
            Ok(cost) => {
                runs += 1;
                slowest = slowest.max(cost.time);
                most = most.max(cost.allocated);
                let class = cost.outcome.class();
                let count = classes.entry(class.clone()).or_default();
                *count += 1;
                if *count == 1 && !from_corpus {
                    corpus.push(input.to_vec());
                    if save {
                        let path = corpus_dir().join(format!("found-{}.bin", name_of(input)));
                        std::fs::write(&path, input).unwrap();
                        println!("new path ({class}): {}", path.display());
                    }
                }
                Ok(())
            }
            Err(failure) => {
                let dir = corpus_dir().parent().unwrap().join("artifacts");
                std::fs::create_dir_all(&dir).unwrap();
                let path = dir.join(format!("failure-{}.bin", name_of(input)));
                std::fs::write(&path, input).unwrap();
                eprintln!(
                    "FAILED: {failure}\n  input written to {}\n  reproduce: cargo run -p fuzz --bin fuzz-frames -- {}",
                    path.display(),
                    path.display()
                );
                Err(())
            }
        }
    };
    for input in corpus.clone() {
        run_one(&input, &mut corpus, true)?;
    }
    while started.elapsed() < budget {
        let input = corpus[rng.below(corpus.len())].clone();
        let mutated = mutate::mutate(&mut rng, world, &corpus, &input);
        run_one(&mutated, &mut corpus, false)?;
    }
    println!(
        "fuzz-frames: {runs} inputs in {:.0} s, {} paths, slowest {:.0} ms, most allocated {} KiB",
        started.elapsed().as_secs_f64(),
        classes.len(),
        slowest.as_secs_f64() * 1e3,
        most >> 10
    );
    for (class, count) in &classes {
        println!("  {count:>8}  {class}");
    }
    Ok(())
}
