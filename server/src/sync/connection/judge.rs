//! Judging one document's incoming changes, off the async runtime: which
//! can be applied now, whether the write policy allows them, the fork they
//! make and what to store and answer. `connection.rs` sends the work here
//! and commits what comes back.

use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;

use automerge::Automerge;
use automerge::sync::{self, SyncDoc};
use shared::{Denial, DocId, DocKind, Principal, check_entries, check_ops, check_quota};

use crate::sync::cache::Locked;
use crate::sync::canonical::Canonical;

/// The CPU-bound part of answering a document's incoming sync messages,
/// run off the async runtime with the document locked.
pub(super) struct Job {
    pub(super) id: DocId,
    pub(super) kind: DocKind,
    pub(super) guard: Locked,
    pub(super) state: sync::State,
    pub(super) messages: Vec<sync::Message>,
}

pub(super) struct Checked {
    pub(super) id: DocId,
    pub(super) kind: DocKind,
    /// The lock, handed back.
    pub(super) guard: Option<Locked>,
    pub(super) state: sync::State,
    /// Actor ids that signed the new changes.
    pub(super) actors: BTreeSet<String>,
    /// Those of them bound to nobody yet (set by `check_actors`).
    pub(super) new_actors: Vec<String>,
    pub(super) outcome: Outcome,
}

pub(super) enum Outcome {
    /// Heads and Bloom filters only: nothing to validate or store.
    Heads {
        reply: Option<Vec<u8>>,
    },
    Accepted {
        /// The canonical document with the changes applied (taken when
        /// stored; boxed, as the other outcomes are a fraction of its size).
        fork: Option<Box<Automerge>>,
        /// The new changes as one storage chunk, if there are any.
        chunk: Option<Chunk>,
        /// Entries they add.
        created: usize,
        /// The answer to the sender once the changes are committed.
        reply: Option<sync::Message>,
    },
    Rejected {
        rule: &'static str,
        message: String,
    },
    Corrupt,
}

/// What a document's accepted changes are stored as.
pub(super) struct Chunk {
    pub(super) data: Vec<u8>,
    /// The whole document, replacing its stored chunks.
    pub(super) snapshot: bool,
}

impl Job {
    pub(super) fn run(mut self, who: &Principal) -> Checked {
        let canonical = self.guard.as_mut().expect("jobs are made for existing documents");
        let messages = std::mem::take(&mut self.messages);
        let (kind, state) = (&self.kind, &mut self.state);
        // Automerge trusts what it is given in places: it unwraps on actor
        // ids a document does not know (a change listing an unused one, or
        // a new actor starting at a sequence number other than 1). A panic
        // while judging or applying a client's changes ends that connection
        // as corrupt input (1007), like a parse error, instead of the task
        // dying without a close frame. Changes are applied to a fork, and a
        // heads-only message changes only this connection's sync state, so
        // the canonical copy is as it was.
        let judged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if messages.iter().all(|m| m.changes.is_empty()) {
                return (BTreeSet::new(), heads_only(canonical, state, messages));
            }
            match incoming_changes(&messages) {
                Some(changes) => {
                    let (changes, messages, wanted) =
                        only_ready(canonical.doc(), changes, messages);
                    let actors = changes.iter().map(|c| c.actor_id().to_hex_string()).collect();
                    (actors, accept(canonical, state, messages, changes, wanted, kind, who))
                }
                None => (BTreeSet::new(), Outcome::Corrupt),
            }
        }));
        let (actors, outcome) = judged.unwrap_or_else(|_| {
            tracing::warn!(doc = %self.id, "sync: Automerge panicked on a client's message; closing the connection");
            (BTreeSet::new(), Outcome::Corrupt)
        });
        Checked {
            id: self.id,
            kind: self.kind,
            guard: Some(self.guard),
            state: self.state,
            actors,
            new_actors: Vec::new(),
            outcome,
        }
    }
}

fn heads_only(
    canonical: &mut Canonical,
    state: &mut sync::State,
    messages: Vec<sync::Message>,
) -> Outcome {
    for message in messages {
        if canonical.receive_heads(state, message).is_err() {
            return Outcome::Corrupt;
        }
    }
    Outcome::Heads { reply: canonical.sync_message(state) }
}

/// The changes the messages carry, parsed one chunk at a time (the
/// messages passed `scan_sync_message`, so each chunk is a plain change).
/// They are applied as parsed here (`receive`), not parsed again by
/// Automerge, so the check Automerge makes while loading is made here: a
/// chunk's checksum must be the first bytes of its change's hash (a change
/// stored with a bad one would stop the document from loading).
fn incoming_changes(messages: &[sync::Message]) -> Option<Vec<automerge::Change>> {
    let mut changes = Vec::new();
    for message in messages {
        for blob in message.changes.iter() {
            for chunk in shared::sync::inbound::change_chunks(blob) {
                let change = automerge::Change::try_from(chunk).ok()?;
                if chunk.get(4..8)? != &change.hash().0[..4] {
                    return None;
                }
                changes.push(change);
            }
        }
    }
    Some(changes)
}

/// The changes that can be applied now (each dependency in the record or
/// among the others that can), the messages carrying only those, and the
/// dependencies the others lack. Automerge would keep the others in a
/// queue and apply them whenever their dependencies came: in a later
/// batch, perhaps another person's, judged by nobody against a record that
/// has moved on (a cancellation judged while it was allowed, stored after
/// an approval). So they are neither judged nor applied now; the server
/// asks for what they lack, and they come back with it and are judged then.
/// An honest replica sends a change without its dependency after a Bloom
/// filter false positive (about one change in a hundred).
fn only_ready(
    base: &Automerge,
    changes: Vec<automerge::Change>,
    mut messages: Vec<sync::Message>,
) -> (Vec<automerge::Change>, Vec<sync::Message>, Vec<automerge::ChangeHash>) {
    const NEVER: usize = usize::MAX;
    let index: HashMap<automerge::ChangeHash, usize> =
        changes.iter().enumerate().map(|(i, c)| (c.hash(), i)).collect();
    let mut missing = vec![0usize; changes.len()];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); changes.len()];
    let mut wanted = BTreeSet::new();
    let mut stack = Vec::new();
    for (i, change) in changes.iter().enumerate() {
        for dep in change.deps() {
            if let Some(&j) = index.get(dep) {
                if missing[i] != NEVER {
                    missing[i] += 1;
                }
                dependents[j].push(i);
            } else if base.get_change_meta_by_hash(dep).is_none() {
                missing[i] = NEVER;
                wanted.insert(*dep);
            }
        }
        if missing[i] == 0 {
            stack.push(i);
        }
    }
    let mut ready = vec![false; changes.len()];
    while let Some(i) = stack.pop() {
        ready[i] = true;
        for &k in &dependents[i] {
            if missing[k] != NEVER {
                missing[k] -= 1;
                if missing[k] == 0 {
                    stack.push(k);
                }
            }
        }
    }
    if ready.iter().all(|r| *r) {
        return (changes, messages, Vec::new());
    }
    // The messages' chunks are the changes, in order (`incoming_changes`).
    let mut flags = ready.iter();
    for message in &mut messages {
        let kept: Vec<Vec<u8>> = message
            .changes
            .iter()
            .flat_map(shared::sync::inbound::change_chunks)
            .filter(|_| flags.next().copied().unwrap_or(false))
            .map(<[u8]>::to_vec)
            .collect();
        message.changes = kept.into();
    }
    let changes = changes.into_iter().zip(ready).filter_map(|(c, r)| r.then_some(c)).collect();
    (changes, messages, wanted.into_iter().collect())
}

/// Judges the changes against the canonical copy before applying any of
/// them, applies them to a fork, judges the entries they touched, and
/// prepares what to store and the acknowledgement.
fn accept(
    canonical: &mut Canonical,
    state: &mut sync::State,
    messages: Vec<sync::Message>,
    changes: Vec<automerge::Change>,
    wanted: Vec<automerge::ChangeHash>,
    kind: &DocKind,
    who: &Principal,
) -> Outcome {
    let rejected = |denial: Denial| Outcome::Rejected {
        rule: denial.rule.code(),
        message: denial.to_string(),
    };
    let plan = match check_ops(canonical.doc(), &changes, kind, who)
        .and_then(|plan| check_quota(&plan).map(|()| plan))
    {
        Ok(plan) => plan,
        Err(denial) => return rejected(denial),
    };
    let room = canonical.incremental_room();
    // What `save_after` would store for them: the new changes' bytes.
    let new_bytes: usize = changes
        .iter()
        .filter(|c| canonical.doc().get_change_meta_by_hash(&c.hash()).is_none())
        .map(|c| c.raw_bytes().len())
        .sum();
    let mut fork = canonical.doc().clone();
    let before = fork.get_heads();
    if receive(&mut fork, state, messages, changes).is_err() {
        return Outcome::Corrupt;
    }
    if let Err(denial) = check_entries(&fork, &plan, kind, who) {
        return rejected(denial);
    }
    let applied = fork.get_heads() != before;
    let chunk = applied.then(|| {
        // Changes that would outgrow the stored snapshot are stored as a
        // new snapshot instead, replacing the chunks (compaction in the
        // same transaction, made here on all cores); their own encoding
        // is then not made at all.
        if new_bytes > room {
            Chunk { data: fork.save(), snapshot: true }
        } else {
            Chunk { data: fork.save_after(&before), snapshot: false }
        }
    });
    // Prepared here, on all cores, but sent only once the changes are
    // committed. The sender waits for our heads to know its changes are
    // stored. A heads-only message from it later in the same batch can make
    // Automerge believe we already told it them, and stay silent; so the
    // acknowledgement is always sent.
    state.last_sent_heads.clear();
    // Changes were left out for lack of their dependencies (`only_ready`):
    // the reply asks for those, and resets the sender's memory of what it
    // sent, so it sends them again together with the changes left out.
    state.needs_reset |= !wanted.is_empty();
    let mut reply = fork.generate_sync_message(state);
    if let Some(reply) = reply.as_mut().filter(|_| !wanted.is_empty()) {
        reply.need.extend(wanted);
        reply.need.sort();
        reply.need.dedup();
    }
    Outcome::Accepted { fork: Some(Box::new(fork)), chunk, created: plan.created.len(), reply }
}

/// What `receive_sync_message` does with `messages`, given their changes
/// already parsed (`incoming_changes`): Automerge would parse each change
/// again (decompress, hash) before applying it. The changes are applied,
/// the heads both sides share advance as Automerge advances them, and the
/// messages, without their changes, update the rest of the sync state.
fn receive(
    doc: &mut Automerge,
    state: &mut sync::State,
    messages: Vec<sync::Message>,
    changes: Vec<automerge::Change>,
) -> Result<(), automerge::AutomergeError> {
    let before = doc.get_heads();
    doc.apply_changes(changes)?;
    let after = doc.get_heads();
    if after != before {
        let new = after.iter().filter(|h| !before.contains(h));
        let kept = state.shared_heads.iter().filter(|h| after.contains(h));
        let mut shared: Vec<automerge::ChangeHash> = new.chain(kept).copied().collect();
        shared.sort();
        shared.dedup();
        state.shared_heads = shared;
    }
    for mut message in messages {
        message.changes = Vec::<Vec<u8>>::new().into();
        doc.receive_sync_message(state, message)?;
    }
    Ok(())
}

/// Applies and checks documents' changes on all cores: merging and checking
/// is most of the cost of a catch-up, and generating a reply for a client's
/// Bloom filter is work too; none of it runs on the async runtime.
pub(super) async fn check_in_parallel(jobs: Vec<Job>, who: &Principal) -> Vec<Checked> {
    if jobs.is_empty() {
        return Vec::new();
    }
    // Read once: it consults cgroup files, too slow to repeat per batch.
    static WORKERS: LazyLock<usize> =
        LazyLock::new(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let workers = *WORKERS;
    let per_worker = jobs.len().div_ceil(workers).max(1);
    let mut jobs = jobs.into_iter().peekable();
    let mut tasks = Vec::new();
    while jobs.peek().is_some() {
        let part: Vec<Job> = jobs.by_ref().take(per_worker).collect();
        let who = who.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            part.into_iter().map(|job| job.run(&who)).collect::<Vec<_>>()
        }));
    }
    let mut checked = Vec::new();
    for task in tasks {
        checked.extend(task.await.expect("validation task does not panic"));
    }
    checked
}
