//! CPU-bound work over many documents, spread over every core and kept off
//! the async runtime's threads.

use std::sync::{Arc, LazyLock, Mutex};

/// Worker threads: read once, as it consults cgroup files (too slow to
/// repeat per batch).
static WORKERS: LazyLock<usize> =
    LazyLock::new(|| std::thread::available_parallelism().map_or(1, |n| n.get()));

/// `f` applied to each item on Tokio's blocking threads, one per core,
/// each taking the next item as it finishes one (documents differ widely
/// in cost); the results in the items' order. A panic in `f` is resumed
/// here, on the caller's task.
pub(crate) async fn map<T, R, F>(items: Vec<T>, f: F) -> Vec<R>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> R + Send + Sync + 'static,
{
    let count = items.len();
    if count == 0 {
        return Vec::new();
    }
    let queue = Arc::new(Mutex::new(items.into_iter().enumerate()));
    let f = Arc::new(f);
    let mut tasks = Vec::new();
    for _ in 0..(*WORKERS).min(count) {
        let (queue, f) = (queue.clone(), f.clone());
        tasks.push(tokio::task::spawn_blocking(move || {
            let mut done = Vec::new();
            loop {
                // A panic in `f` never happens holding the queue's lock.
                let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
                let Some((i, item)) = next else { break done };
                done.push((i, f(item)));
            }
        }));
    }
    let mut results = Vec::with_capacity(count);
    for task in tasks {
        match task.await {
            Ok(done) => results.extend(done),
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
    results.sort_unstable_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn results_come_back_in_order() {
        let squares = super::map((0..1000u64).collect(), |n| n * n).await;
        assert_eq!(squares, (0..1000u64).map(|n| n * n).collect::<Vec<_>>());
        assert!(super::map(Vec::<u8>::new(), |n| n).await.is_empty());
    }
}
