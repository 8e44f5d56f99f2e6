//! Judging one document's incoming changes, off the async runtime: which
//! can be applied now, whether the write policy allows them, the fork they
//! make and what to store and answer. `connection.rs` sends the work here
//! and commits what comes back.

use std::collections::{BTreeSet, HashMap};

use automerge::Automerge;
use automerge::sync::{self, SyncDoc};
use shared::schema::Collection;
use shared::{Denial, DocId, DocKind, Principal, check_entries, check_ops, check_quota};

use crate::sync::cache::Locked;
use crate::sync::canonical::{self, Canonical};

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
        /// The collections they write into (for the index, `summary`).
        touched: BTreeSet<Collection>,
        /// The answer to the sender once the changes are committed,
        /// encoded here (on all cores).
        reply: Option<Vec<u8>>,
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
                Some((changes, counts)) => {
                    let incoming = Incoming { messages, changes, counts };
                    let (incoming, wanted) = only_ready(canonical.doc(), incoming);
                    // The change adding a thread's `tasks` collection is
                    // the same from every device and signed by nobody's
                    // actor (`DocKind::tasks_change`): it binds no one.
                    let tasks_actor = kind.tasks_actor();
                    let actors = incoming
                        .changes
                        .iter()
                        .filter(|c| *c.actor_id() != tasks_actor)
                        .map(|c| c.actor_id().to_hex_string())
                        .collect();
                    (actors, accept(canonical, state, incoming, wanted, kind, who))
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

/// The changes the messages carry, parsed one chunk at a time, and how
/// many each message carries (the messages passed `scan_sync_message`, so
/// each chunk is a plain change). They are applied as parsed here
/// (`receive`), not parsed again by Automerge, so the check Automerge makes
/// while loading is made here: a chunk's checksum must be the first bytes
/// of its change's hash (a change stored with a bad one would stop the
/// document from loading).
fn incoming_changes(messages: &[sync::Message]) -> Option<(Vec<automerge::Change>, Vec<usize>)> {
    let mut changes = Vec::new();
    let mut counts = Vec::with_capacity(messages.len());
    for message in messages {
        let before = changes.len();
        for blob in message.changes.iter() {
            for chunk in shared::sync::inbound::change_chunks(blob) {
                let change = automerge::Change::try_from(chunk).ok()?;
                if chunk.get(4..8)? != &change.hash().0[..4] {
                    return None;
                }
                changes.push(change);
            }
        }
        counts.push(changes.len() - before);
    }
    Some((changes, counts))
}

/// Changes parsed from a batch's messages (`incoming_changes`): all of
/// them in order, and how many each message carries.
struct Incoming {
    messages: Vec<sync::Message>,
    changes: Vec<automerge::Change>,
    counts: Vec<usize>,
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
fn only_ready(base: &Automerge, incoming: Incoming) -> (Incoming, Vec<automerge::ChangeHash>) {
    const NEVER: usize = usize::MAX;
    let Incoming { mut messages, changes, counts } = incoming;
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
        return (Incoming { messages, changes, counts }, Vec::new());
    }
    // The messages' chunks are the changes, in order (`incoming_changes`).
    let mut flags = ready.iter();
    let mut kept_counts = Vec::with_capacity(counts.len());
    for message in &mut messages {
        let kept: Vec<Vec<u8>> = message
            .changes
            .iter()
            .flat_map(shared::sync::inbound::change_chunks)
            .filter(|_| flags.next().copied().unwrap_or(false))
            .map(<[u8]>::to_vec)
            .collect();
        kept_counts.push(kept.len());
        message.changes = kept.into();
    }
    let changes = changes.into_iter().zip(ready).filter_map(|(c, r)| r.then_some(c)).collect();
    (Incoming { messages, changes, counts: kept_counts }, wanted.into_iter().collect())
}

/// Judges the changes against the canonical copy before applying any of
/// them, applies them to a fork, judges the entries they touched, and
/// prepares what to store and the acknowledgement.
fn accept(
    canonical: &mut Canonical,
    state: &mut sync::State,
    incoming: Incoming,
    wanted: Vec<automerge::ChangeHash>,
    kind: &DocKind,
    who: &Principal,
) -> Outcome {
    let rejected = |denial: Denial| Outcome::Rejected {
        rule: denial.rule.code(),
        message: denial.to_string(),
    };
    let plan = match check_ops(canonical.doc(), &incoming.changes, kind, who)
        .and_then(|plan| check_quota(&plan).map(|()| plan))
    {
        Ok(plan) => plan,
        Err(denial) => return rejected(denial),
    };
    let room = canonical.incremental_room();
    // What `save_after` would store for them: the new changes' bytes.
    let new_bytes: usize = incoming
        .changes
        .iter()
        .filter(|c| canonical.doc().get_change_meta_by_hash(&c.hash()).is_none())
        .map(|c| c.raw_bytes().len())
        .sum();
    let mut fork = canonical.doc().clone();
    let before = fork.get_heads();
    if receive(&mut fork, state, incoming).is_err() {
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
            Chunk { data: canonical::snapshot(&fork), snapshot: true }
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
    let touched = plan.created.iter().chain(&plan.updated).map(|(c, _)| *c).collect();
    Outcome::Accepted {
        fork: Some(Box::new(fork)),
        chunk,
        created: plan.created.len(),
        touched,
        reply: reply.map(|reply| reply.encode()),
    }
}

/// What `receive_sync_message` does with each of the messages in turn,
/// given their changes already parsed (`incoming_changes`): Automerge
/// would parse each change again (decompress, hash) before applying it.
/// Each message's changes are applied, the heads both sides share advance
/// as Automerge advances them, and the message, without its changes,
/// updates the rest of the sync state; what Automerge does only for a
/// message that carries no changes (take its heads as the last ones sent
/// when they equal ours) is undone for one that did. The document and the
/// sync state end exactly as Automerge leaves them (a property test below
/// checks it); the difference is in what Automerge would do with a corrupt
/// chunk (apply those before it; here nothing is applied) or a change
/// whose dependencies are missing (queue it; here `only_ready` has left it
/// out), and documents here always start from their genesis change
/// (Automerge loads into an empty document differently).
fn receive(
    doc: &mut Automerge,
    state: &mut sync::State,
    incoming: Incoming,
) -> Result<(), automerge::AutomergeError> {
    let Incoming { messages, changes, counts } = incoming;
    let mut changes = changes.into_iter();
    for (mut message, count) in messages.into_iter().zip(counts) {
        let carried = !message.changes.is_empty();
        let mine: Vec<automerge::Change> = changes.by_ref().take(count).collect();
        if carried && !state.read_only {
            let before = doc.get_heads();
            doc.apply_changes(mine)?;
            state.shared_heads = advance_heads(&before, &doc.get_heads(), &state.shared_heads);
        }
        let last_sent = carried.then(|| state.last_sent_heads.clone());
        let lost_everything = message.heads.is_empty();
        message.changes = Vec::<Vec<u8>>::new().into();
        doc.receive_sync_message(state, message)?;
        // Automerge clears it for a peer that lost everything, changes or not.
        if let Some(last_sent) = last_sent.filter(|_| !lost_everything) {
            state.last_sent_heads = last_sent;
        }
    }
    Ok(())
}

/// Automerge's `advance_heads` (private to its sync module): the heads
/// applying changes added, and the shared heads that are still heads,
/// sorted.
fn advance_heads(
    before: &[automerge::ChangeHash],
    after: &[automerge::ChangeHash],
    shared: &[automerge::ChangeHash],
) -> Vec<automerge::ChangeHash> {
    let new = after.iter().filter(|h| !before.contains(h));
    let kept = shared.iter().filter(|h| after.contains(h));
    let mut heads: Vec<automerge::ChangeHash> = new.chain(kept).copied().collect();
    heads.sort();
    heads.dedup();
    heads
}

/// Applies and checks documents' changes on all cores: merging and checking
/// is most of the cost of a catch-up, and generating a reply for a client's
/// Bloom filter is work too; none of it runs on the async runtime. Each
/// worker takes the next document not taken yet: splitting the batch into
/// equal parts left one core idle whenever its part finished first (a
/// smaller document, or the thread descheduled on a shared machine).
/// Results come back in the order of `jobs`.
pub(super) async fn check_in_parallel(jobs: Vec<Job>, who: &Principal) -> Vec<Checked> {
    let who = who.clone();
    crate::sync::parallel::map(jobs, move |job| job.run(&who)).await
}

#[cfg(test)]
mod tests {
    use automerge::sync::{self, SyncDoc};
    use automerge::transaction::Transactable;
    use automerge::{ActorId, Automerge, ROOT, ReadDoc};
    use proptest::prelude::*;

    use super::{Incoming, incoming_changes, receive};

    #[derive(Clone, Debug)]
    enum Step {
        /// A peer (0 and 1 are clients, 2 the server) writes a value.
        Edit { peer: usize, key: u8, value: i64 },
        /// A client generates a sync message; it waits, unread, with any
        /// it sent before.
        ClientSends { peer: usize },
        /// The server takes every message waiting from a client at once,
        /// as one batch.
        ServerTakes { peer: usize },
        /// The server answers a client, which takes the answer at once.
        ServerSends { peer: usize },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0..3usize, 0..4u8, any::<i64>()).prop_map(|(peer, key, value)| Step::Edit {
                peer,
                key,
                value
            }),
            (0..2usize).prop_map(|peer| Step::ClientSends { peer }),
            (0..2usize).prop_map(|peer| Step::ServerTakes { peer }),
            (0..2usize).prop_map(|peer| Step::ServerSends { peer }),
        ]
    }

    fn put(doc: &mut Automerge, key: u8, value: i64) {
        doc.transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(ROOT, format!("k{key}"), value).map(drop)
        })
        .expect("put");
    }

    /// The server's copy through `receive` and a copy through Automerge's
    /// own `receive_sync_message` stay equal, document and sync states,
    /// whatever two clients with concurrent edits send in whatever batches.
    fn run(steps: Vec<Step>) {
        // Portal documents start from a genesis change every copy holds.
        let mut genesis = Automerge::new().with_actor(ActorId::from(vec![0u8; 16]));
        put(&mut genesis, 0, 0);
        let mut clients: Vec<Automerge> =
            (1..=2u8).map(|n| genesis.clone().with_actor(ActorId::from(vec![n; 16]))).collect();
        let mut client_states = [sync::State::new(), sync::State::new()];
        let mut waiting: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
        let mut plain = genesis.clone().with_actor(ActorId::from(vec![9u8; 16]));
        let mut ours = genesis.clone();
        let mut plain_states = [sync::State::new(), sync::State::new()];
        let mut our_states = [sync::State::new(), sync::State::new()];
        for step in steps {
            match step {
                Step::Edit { peer: 2, key, value } => {
                    put(&mut plain, key, value);
                    let change = plain.get_last_local_change().expect("made").clone();
                    ours.apply_changes([change]).expect("apply");
                }
                Step::Edit { peer, key, value } => put(&mut clients[peer], key, value),
                Step::ClientSends { peer } => {
                    // As the portal's client sends: one change per entry
                    // (V1), never a whole document (`shared::sync::client`).
                    client_states[peer].their_capabilities = None;
                    let message = clients[peer].generate_sync_message(&mut client_states[peer]);
                    waiting[peer].extend(message.map(sync::Message::encode));
                }
                Step::ServerTakes { peer } => {
                    let batch = std::mem::take(&mut waiting[peer]);
                    if batch.is_empty() {
                        continue;
                    }
                    // What the connection does before judging (`handle_batch`).
                    let decode = |bytes: &Vec<u8>| {
                        shared::sync::scan_sync_message(bytes).expect("bounded");
                        sync::Message::decode(bytes).expect("decode")
                    };
                    for message in batch.iter().map(decode) {
                        plain
                            .receive_sync_message(&mut plain_states[peer], message)
                            .expect("plain");
                    }
                    let messages: Vec<sync::Message> = batch.iter().map(decode).collect();
                    let (changes, counts) = incoming_changes(&messages).expect("well formed");
                    let incoming = Incoming { messages, changes, counts };
                    receive(&mut ours, &mut our_states[peer], incoming).expect("ours");
                    assert_eq!(ours.get_heads(), plain.get_heads());
                    assert_eq!(ours.get_missing_deps(&[]), plain.get_missing_deps(&[]));
                    assert_eq!(ours.save(), plain.save());
                    assert_eq!(our_states[peer], plain_states[peer]);
                }
                Step::ServerSends { peer } => {
                    let message = plain.generate_sync_message(&mut plain_states[peer]);
                    let our_message = ours.generate_sync_message(&mut our_states[peer]);
                    assert_eq!(
                        our_message.clone().map(sync::Message::encode),
                        message.clone().map(sync::Message::encode)
                    );
                    assert_eq!(our_states[peer], plain_states[peer]);
                    if let Some(message) = message {
                        clients[peer]
                            .receive_sync_message(&mut client_states[peer], message)
                            .expect("client");
                    }
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn receive_leaves_what_automerge_leaves(steps in proptest::collection::vec(step(), 0..60)) {
            run(steps);
        }
    }
}
