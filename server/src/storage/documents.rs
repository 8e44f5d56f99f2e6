//! Automerge documents as stored bytes: a snapshot plus incremental chunks.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use shared::{DocId, DocKind, PatientId};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::{AuditEvent, insert_audit};
use super::patient_index::IndexRow;
use super::{Backend, ROWS_PER_STATEMENT, Store, StoreError, UserRecord, parse_id};
use shared::api::UserRole;

/// A chunk to store (`Store::store_chunks`): changes, or a snapshot of the
/// whole document.
#[derive(Clone, Copy, Debug)]
pub struct NewChunk<'a> {
    pub doc: DocId,
    pub data: &'a [u8],
    /// `Some` for a snapshot: it holds every stored chunk numbered up to
    /// this, and replaces them.
    pub snapshot_through: Option<i64>,
    /// The document's sequence number when the copy these changes were
    /// judged against was read; storing fails if it moved on since.
    pub expected_seq: Option<i64>,
}

/// New entries one person may add to one document in a UTC day: a patient
/// writes a few messages and requests; a clinic records a day's results.
pub const ENTRIES_PER_DAY_PATIENT_SIDE: i64 = 200;
pub const ENTRIES_PER_DAY_STAFF: i64 = 5_000;

/// What one sync batch stores (`Store::store_writes`).
pub struct Writes<'a> {
    pub chunks: &'a [NewChunk<'a>],
    pub events: &'a [AuditEvent<'a>],
    /// The person whose changes these are; `None` for the server's own
    /// writes (compaction).
    pub author: Option<Author<'a>>,
    /// When (ms): the chunks' and audit rows' time, and the day whose
    /// quota the entries count against.
    pub now: i64,
    /// What the changed documents now say for the patient list and the
    /// work queue (`storage::IndexRow`), written in the same transaction.
    pub index: &'a [IndexRow],
}

/// The author of a batch's changes.
pub struct Author<'a> {
    pub user: &'a UserRecord,
    /// Each written document with its patient, whose consent is checked.
    pub patients: &'a [(DocId, PatientId)],
    /// New entries added to each document, counted against the quota.
    pub entries: &'a [(DocId, usize)],
    /// Actor ids that signed the changes and are not yet bound to anyone.
    pub actors: &'a [String],
}

/// A document's identity and kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DocumentRow {
    pub id: DocId,
    pub kind: DocKind,
}

/// Everything stored for one document, snapshot first.
#[derive(Clone, Debug, Default)]
pub struct StoredDocument {
    pub chunks: Vec<Vec<u8>>,
    /// The document's change sequence number this state reaches: every
    /// stored chunk numbered up to it is included.
    pub seq: i64,
    pub snapshot_bytes: usize,
    pub incremental_bytes: usize,
}

impl StoredDocument {
    /// The document these bytes hold.
    pub fn to_automerge(&self) -> Result<automerge::Automerge, StoreError> {
        let mut doc = automerge::Automerge::new();
        for chunk in &self.chunks {
            doc.load_incremental(chunk).map_err(|e| {
                StoreError::Corrupt(format!("a stored document does not load: {e}"))
            })?;
        }
        Ok(doc)
    }

    /// Whether the incremental chunks have outgrown the snapshot, so that
    /// folding them into a new snapshot keeps loading proportional to size.
    pub fn wants_compaction(&self) -> bool {
        self.chunks.len() > 1 && self.incremental_bytes > self.snapshot_bytes.max(4096)
    }
}

pub(super) fn document_row(row: &AnyRow) -> Result<DocumentRow, StoreError> {
    let id = parse_id(&row.get::<String, _>(0))?;
    let patient = parse_id(&row.get::<String, _>(2))?;
    let clinic = row.get::<Option<String>, _>(3).map(|c| parse_id(&c)).transpose()?;
    let kind = DocKind::from_parts(&row.get::<String, _>(1), patient, clinic)
        .ok_or_else(|| StoreError::Corrupt("unknown document kind".into()))?;
    Ok(DocumentRow { id, kind })
}

impl Store {
    /// Creates a document with its genesis change, unless it exists already.
    pub async fn create_document(&self, kind: &DocKind, now: i64) -> Result<DocId, StoreError> {
        let id = kind.doc_id();
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO documents (id, kind, patient_id, clinic_id, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id.to_string())
        .bind(kind.name())
        .bind(kind.patient().to_string())
        .bind(kind.clinic().map(|c| c.to_string()))
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            sqlx::query("INSERT INTO doc_chunks (doc_id, is_snapshot, data, created_at) VALUES ($1, 1, $2, $3)")
                .bind(id.to_string())
                .bind(kind.genesis().save())
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    pub async fn document(&self, id: DocId) -> Result<Option<DocumentRow>, StoreError> {
        sqlx::query("SELECT id, kind, patient_id, clinic_id FROM documents WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(document_row)
            .transpose()
    }

    pub async fn patient_documents(
        &self,
        patient: PatientId,
    ) -> Result<Vec<DocumentRow>, StoreError> {
        sqlx::query("SELECT id, kind, patient_id, clinic_id FROM documents WHERE patient_id = $1 ORDER BY id")
            .bind(patient.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(document_row)
            .collect()
    }

    /// The stored bytes of a document, snapshot first; `None` if it does not exist.
    pub async fn load_document(&self, id: DocId) -> Result<Option<StoredDocument>, StoreError> {
        Ok(self.load_documents(&[id]).await?.remove(&id))
    }

    /// The stored bytes of many documents, each snapshot first, read with
    /// a few queries rather than one per document; documents that do not
    /// exist are missing from the result.
    pub async fn load_documents(
        &self,
        ids: &[DocId],
    ) -> Result<HashMap<DocId, StoredDocument>, StoreError> {
        let mut stored: HashMap<DocId, StoredDocument> = HashMap::new();
        for part in ids.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT doc_id, seq, is_snapshot, data FROM doc_chunks WHERE doc_id IN ({}) ORDER BY doc_id, is_snapshot DESC, seq",
                self.backend.placeholder_list(part.len())
            );
            let mut query = sqlx::query(&sql);
            for id in part {
                query = query.bind(id.to_string());
            }
            for row in query.fetch_all(&self.pool).await? {
                let doc = stored.entry(parse_id(&row.get::<String, _>(0))?).or_default();
                let data: Vec<u8> = row.get(3);
                if row.get::<i64, _>(2) != 0 {
                    doc.snapshot_bytes += data.len();
                } else {
                    doc.incremental_bytes += data.len();
                }
                doc.seq = doc.seq.max(row.get(1));
                doc.chunks.push(data);
            }
        }
        Ok(stored)
    }

    /// Appends incremental changes to many documents in one transaction
    /// (`store_chunks`); returns their sequence numbers, in order.
    pub async fn append_changes(
        &self,
        batch: &[(DocId, Vec<u8>)],
        now: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let chunks: Vec<NewChunk<'_>> = batch
            .iter()
            .map(|(doc, data)| NewChunk {
                doc: *doc,
                data,
                snapshot_through: None,
                expected_seq: None,
            })
            .collect();
        self.store_chunks(&chunks, now).await
    }

    /// Stores chunks of many documents in one transaction: when this
    /// returns, every one of them is on disk. Each chunk takes its
    /// document's next sequence number (a document named several times
    /// takes consecutive numbers, in batch order); returns them, in order.
    /// A snapshot replaces its document's chunks numbered up to its
    /// `snapshot_through`, all of which it must contain. The numbers of the
    /// whole batch are taken with one statement per `ROWS_PER_STATEMENT`
    /// documents, and chunks deleted and stored with one statement per as
    /// many chunks, so a batch costs a few round trips whatever its size.
    pub async fn store_chunks(
        &self,
        batch: &[NewChunk<'_>],
        now: i64,
    ) -> Result<Vec<i64>, StoreError> {
        self.store_audited(batch, &[], now).await
    }

    /// [`Store::store_chunks`], with audit events written in the same
    /// transaction: a stored change never lacks its `change_accepted` row,
    /// and no row claims a change that was not stored.
    pub async fn store_audited(
        &self,
        batch: &[NewChunk<'_>],
        events: &[AuditEvent<'_>],
        now: i64,
    ) -> Result<Vec<i64>, StoreError> {
        self.store_writes(&Writes { chunks: batch, events, author: None, now, index: &[] }).await
    }

    /// Stores a sync batch in one transaction: its chunks, its audit rows,
    /// and, for the author's changes, the binding of their new actor ids,
    /// after checking under the transaction's locks that the author may
    /// still write every document (consent not revoked, account active)
    /// and that each document is still at the sequence number its copy was
    /// read at (`NewChunk::expected_seq`). A document another instance
    /// wrote meanwhile fails the batch with [`StoreError::Stale`]: the
    /// caller catches its copy up and judges the changes again.
    pub async fn store_writes(&self, writes: &Writes<'_>) -> Result<Vec<i64>, StoreError> {
        if writes.chunks.is_empty() && writes.events.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        if let (Some(author), false) = (&writes.author, writes.chunks.is_empty()) {
            self.check_author(&mut tx, author, writes.chunks, writes.now).await?;
        }
        let seqs = if writes.chunks.is_empty() {
            Vec::new()
        } else {
            self.write_chunks(&mut tx, writes.chunks, writes.now).await?
        };
        insert_audit(self.backend, &mut tx, writes.events, writes.now).await?;
        super::patient_index::write_index(&mut tx, writes.index, writes.now).await?;
        tx.commit().await?;
        Ok(seqs)
    }

    /// Adds the batch's new entries to the counts of `now`'s UTC day;
    /// returns the documents that would go over the author's daily quota.
    async fn count_entries(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        user: &str,
        author: &Author<'_>,
        now: i64,
    ) -> Result<Vec<DocId>, StoreError> {
        let limit = match author.user.role {
            UserRole::Patient | UserRole::Caregiver => ENTRIES_PER_DAY_PATIENT_SIDE,
            UserRole::Provider | UserRole::Admin => ENTRIES_PER_DAY_STAFF,
        };
        let day = now / 86_400_000;
        // One statement per `ROWS_PER_STATEMENT` documents, not one each:
        // a catch-up of a thousand documents made a thousand round trips
        // here. A statement may take each row once, so counts are summed
        // per document first.
        let mut added: BTreeMap<DocId, i64> = BTreeMap::new();
        for (doc, entries) in author.entries.iter().filter(|(_, n)| *n > 0) {
            *added.entry(*doc).or_default() += *entries as i64;
        }
        let added: Vec<(DocId, i64)> = added.into_iter().collect();
        let mut over = Vec::new();
        for part in added.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO entry_counts (user_id, doc_id, day, entries) VALUES {} \
                 ON CONFLICT (user_id, doc_id, day) DO UPDATE SET entries = entry_counts.entries + excluded.entries \
                 RETURNING doc_id, entries",
                self.backend.placeholder_rows(part.len(), 4)
            );
            let mut query = sqlx::query(&sql);
            for (doc, entries) in part {
                query = query.bind(user).bind(doc.to_string()).bind(day).bind(*entries);
            }
            for row in query.fetch_all(&mut **tx).await? {
                let total: i64 = row.get(1);
                if total > limit {
                    let doc: String = row.get(0);
                    over.push(doc.parse().map_err(|_| {
                        StoreError::Corrupt(format!("entry_counts names document {doc:?}"))
                    })?);
                }
            }
        }
        over.sort();
        Ok(over)
    }

    /// Within the storing transaction: the author may still write these
    /// documents, and their actor ids are theirs (bound here if new).
    async fn check_author(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        author: &Author<'_>,
        chunks: &[NewChunk<'_>],
        now: i64,
    ) -> Result<(), StoreError> {
        let user = author.user.id.to_string();
        // On PostgreSQL the rows read here are share-locked until commit, so
        // a revocation committing meanwhile waits for this batch, and a
        // batch after it sees it.
        let share = if self.backend == Backend::Postgres { " FOR SHARE" } else { "" };
        let active = sqlx::query(&format!(
            "SELECT 1 FROM users WHERE id = $1 AND revoked_at IS NULL{share}"
        ))
        .bind(&user)
        .fetch_optional(&mut **tx)
        .await?
        .is_some();
        let mut denied: Vec<DocId> = Vec::new();
        if !active {
            denied.extend(chunks.iter().map(|c| c.doc));
        } else if matches!(author.user.role, UserRole::Provider | UserRole::Admin) {
            let patients: BTreeSet<String> =
                author.patients.iter().map(|(_, p)| p.to_string()).collect();
            let mut consenting: HashSet<String> = HashSet::new();
            let listed: Vec<&String> = patients.iter().collect();
            for part in listed.chunks(ROWS_PER_STATEMENT) {
                let sql = format!(
                    "SELECT c.patient_id FROM consents c JOIN memberships m ON m.clinic_id = c.clinic_id AND m.user_id = $1 \
                     WHERE c.revoked_at IS NULL AND c.patient_id IN ({}){}",
                    (2..part.len() + 2).map(|i| format!("${i}")).collect::<Vec<_>>().join(", "),
                    if self.backend == Backend::Postgres { " FOR SHARE OF c" } else { "" }
                );
                let mut query = sqlx::query(&sql).bind(&user);
                for patient in part {
                    query = query.bind(patient.as_str());
                }
                for row in query.fetch_all(&mut **tx).await? {
                    consenting.insert(row.get(0));
                }
            }
            denied.extend(
                author
                    .patients
                    .iter()
                    .filter(|(_, p)| !consenting.contains(&p.to_string()))
                    .map(|(d, _)| *d),
            );
        }
        if !denied.is_empty() {
            return Err(StoreError::AccessEnded(denied));
        }
        let over = self.count_entries(tx, &user, author, now).await?;
        if !over.is_empty() {
            return Err(StoreError::Quota(over));
        }
        if !author.actors.is_empty() {
            for part in author.actors.chunks(ROWS_PER_STATEMENT) {
                let sql = format!(
                    "INSERT INTO actors (actor_id, user_id, created_at) VALUES {} ON CONFLICT (actor_id) DO NOTHING",
                    self.backend.placeholder_rows(part.len(), 3)
                );
                let mut query = sqlx::query(&sql);
                for actor in part {
                    query = query.bind(actor.as_str()).bind(&user).bind(now);
                }
                query.execute(&mut **tx).await?;
                let sql = format!(
                    "SELECT actor_id FROM actors WHERE user_id <> $1 AND actor_id IN ({})",
                    (2..part.len() + 2).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
                );
                let mut query = sqlx::query(&sql).bind(&user);
                for actor in part {
                    query = query.bind(actor.as_str());
                }
                if !query.fetch_all(&mut **tx).await?.is_empty() {
                    return Err(StoreError::ActorTaken);
                }
            }
        }
        Ok(())
    }

    async fn write_chunks(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        batch: &[NewChunk<'_>],
        now: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let mut counts: BTreeMap<DocId, i64> = BTreeMap::new();
        for chunk in batch {
            *counts.entry(chunk.doc).or_default() += 1;
        }
        let mut next = self.take_seqs(tx, &counts).await?;
        // Compare and swap: a copy that missed another writer's chunk judged
        // the changes against an old record.
        let stale: Vec<DocId> = batch
            .iter()
            .filter(|chunk| {
                chunk
                    .expected_seq
                    .is_some_and(|expected| next.get(&chunk.doc) != Some(&(expected + 1)))
            })
            .map(|chunk| chunk.doc)
            .collect();
        if !stale.is_empty() {
            return Err(StoreError::Stale(stale));
        }
        let seqs: Vec<i64> = batch
            .iter()
            .map(|chunk| {
                let seq = next.get_mut(&chunk.doc).expect("a number for every document");
                *seq += 1;
                *seq - 1
            })
            .collect();
        // Only chunks stored before this batch are numbered up to a snapshot's `through`.
        let replaced: Vec<(DocId, i64)> =
            batch.iter().filter_map(|c| Some((c.doc, c.snapshot_through?))).collect();
        for part in replaced.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "DELETE FROM doc_chunks WHERE {}",
                (0..part.len())
                    .map(|i| format!("(doc_id = ${} AND seq <= ${})", 2 * i + 1, 2 * i + 2))
                    .collect::<Vec<_>>()
                    .join(" OR ")
            );
            let mut query = sqlx::query(&sql);
            for (doc, through) in part {
                query = query.bind(doc.to_string()).bind(*through);
            }
            query.execute(&mut **tx).await?;
        }
        let numbered: Vec<(&NewChunk<'_>, i64)> = batch.iter().zip(seqs.iter().copied()).collect();
        for part in numbered.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO doc_chunks (doc_id, is_snapshot, data, created_at, seq) VALUES {}",
                self.backend.placeholder_rows(part.len(), 5)
            );
            let mut query = sqlx::query(&sql);
            for (chunk, seq) in part {
                query = query
                    .bind(chunk.doc.to_string())
                    .bind(i64::from(chunk.snapshot_through.is_some()))
                    .bind(chunk.data)
                    .bind(now)
                    .bind(*seq);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(seqs)
    }

    /// The chunks stored after sequence number `after` (by this or another
    /// server instance), oldest first, with their numbers. Loading them into
    /// a document that holds everything up to `after` brings it up to date.
    pub async fn chunks_after(
        &self,
        id: DocId,
        after: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        Ok(sqlx::query(
            "SELECT seq, data FROM doc_chunks WHERE doc_id = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(id.to_string())
        .bind(after)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
    }

    /// The current sequence numbers of documents (those that exist).
    pub async fn document_seqs(&self, ids: &[DocId]) -> Result<Vec<(DocId, i64)>, StoreError> {
        let mut seqs = Vec::with_capacity(ids.len());
        for part in ids.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT id, seq FROM documents WHERE id IN ({})",
                self.backend.placeholder_list(part.len())
            );
            let mut query = sqlx::query(&sql);
            for id in part {
                query = query.bind(id.to_string());
            }
            for row in query.fetch_all(&self.pool).await? {
                seqs.push((parse_id(&row.get::<String, _>(0))?, row.get(1)));
            }
        }
        Ok(seqs)
    }

    /// Replaces every chunk numbered up to `through` with `snapshot`, which
    /// must contain all of them. Chunks appended meanwhile are kept. The
    /// snapshot takes the document's next sequence number, which is returned.
    pub async fn compact_document(
        &self,
        id: DocId,
        snapshot: &[u8],
        through: i64,
        now: i64,
    ) -> Result<i64, StoreError> {
        Ok(self.compact_documents(&[(id, snapshot, through)], now).await?[0])
    }

    /// `compact_document` for many documents in one transaction
    /// (`store_chunks`); returns the snapshots' sequence numbers, in order.
    pub async fn compact_documents(
        &self,
        batch: &[(DocId, &[u8], i64)],
        now: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let chunks: Vec<NewChunk<'_>> = batch
            .iter()
            .map(|(doc, data, through)| NewChunk {
                doc: *doc,
                data,
                snapshot_through: Some(*through),
                expected_seq: None,
            })
            .collect();
        self.store_chunks(&chunks, now).await
    }

    /// Takes the next `count` sequence numbers of each document, returning
    /// the first of them. The row locks this takes order every writer of
    /// these documents until the transaction ends. On PostgreSQL they are
    /// taken in id order (`FOR UPDATE` under `ORDER BY`) and parts follow
    /// in id order too, so writers of overlapping batches (other instances)
    /// never deadlock; SQLite has one writer at a time and no `FOR UPDATE`.
    async fn take_seqs(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        counts: &BTreeMap<DocId, i64>,
    ) -> Result<HashMap<DocId, i64>, StoreError> {
        let lock = if self.backend == Backend::Postgres { " FOR UPDATE" } else { "" };
        let ids: Vec<&DocId> = counts.keys().collect();
        let mut first = HashMap::with_capacity(counts.len());
        for part in ids.chunks(ROWS_PER_STATEMENT) {
            // $1, $3, ...: the ids; $2, $4, ...: how many numbers each takes.
            let cases: String = (0..part.len())
                .map(|i| format!(" WHEN ${} THEN ${}", 2 * i + 1, 2 * i + 2))
                .collect();
            let listed =
                (0..part.len()).map(|i| format!("${}", 2 * i + 1)).collect::<Vec<_>>().join(", ");
            let sql = format!(
                "UPDATE documents SET seq = seq + CASE id{cases} END \
                 WHERE id IN (SELECT id FROM documents WHERE id IN ({listed}) ORDER BY id{lock}) RETURNING id, seq"
            );
            let mut query = sqlx::query(&sql);
            for id in part {
                query = query.bind(id.to_string()).bind(counts[*id]);
            }
            for row in query.fetch_all(&mut **tx).await? {
                let id: DocId = parse_id(&row.get::<String, _>(0))?;
                let last: i64 = row.get(1);
                let count = counts.get(&id).ok_or_else(|| {
                    StoreError::Corrupt("a sequence number for another document".into())
                })?;
                first.insert(id, last - count + 1);
            }
        }
        if first.len() != counts.len() {
            return Err(StoreError::Corrupt("a chunk for a document that does not exist".into()));
        }
        Ok(first)
    }
}
