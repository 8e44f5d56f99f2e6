//! Automerge documents as stored bytes: a snapshot plus incremental chunks.

use shared::{DocId, DocKind, PatientId};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, now_ms, parse_id};

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
            doc.load_incremental(chunk).map_err(|e| StoreError::Corrupt(format!("a stored document does not load: {e}")))?;
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
    pub async fn create_document(&self, kind: &DocKind) -> Result<DocId, StoreError> {
        let id = kind.doc_id();
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO documents (id, kind, patient_id, clinic_id, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id.to_string())
        .bind(kind.name())
        .bind(kind.patient().to_string())
        .bind(kind.clinic().map(|c| c.to_string()))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            sqlx::query("INSERT INTO doc_chunks (doc_id, is_snapshot, data, created_at) VALUES ($1, 1, $2, $3)")
                .bind(id.to_string())
                .bind(kind.genesis().save())
                .bind(now_ms())
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

    pub async fn patient_documents(&self, patient: PatientId) -> Result<Vec<DocumentRow>, StoreError> {
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
        let rows = sqlx::query("SELECT seq, is_snapshot, data FROM doc_chunks WHERE doc_id = $1 ORDER BY is_snapshot DESC, seq")
            .bind(id.to_string())
            .fetch_all(&self.pool)
            .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut stored = StoredDocument::default();
        for row in rows {
            let data: Vec<u8> = row.get(2);
            if row.get::<i64, _>(1) != 0 {
                stored.snapshot_bytes += data.len();
            } else {
                stored.incremental_bytes += data.len();
            }
            stored.seq = stored.seq.max(row.get(0));
            stored.chunks.push(data);
        }
        Ok(Some(stored))
    }

    /// Appends incremental changes to many documents in one transaction: when
    /// this returns, every one of them is on disk. Each chunk takes its
    /// document's next sequence number; returns them, in order. Callers pass
    /// documents in id order so that concurrent writers (other server
    /// instances) lock the `documents` rows in the same order.
    pub async fn append_changes(&self, batch: &[(DocId, Vec<u8>)]) -> Result<Vec<i64>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        let now = now_ms();
        let mut seqs = Vec::with_capacity(batch.len());
        for (doc, data) in batch {
            let seq = next_seq(&mut tx, *doc).await?;
            sqlx::query("INSERT INTO doc_chunks (doc_id, is_snapshot, data, created_at, seq) VALUES ($1, 0, $2, $3, $4)")
                .bind(doc.to_string())
                .bind(data.as_slice())
                .bind(now)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            seqs.push(seq);
        }
        tx.commit().await?;
        Ok(seqs)
    }

    /// The chunks stored after sequence number `after` (by this or another
    /// server instance), oldest first, with their numbers. Loading them into
    /// a document that holds everything up to `after` brings it up to date.
    pub async fn chunks_after(&self, id: DocId, after: i64) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        Ok(sqlx::query("SELECT seq, data FROM doc_chunks WHERE doc_id = $1 AND seq > $2 ORDER BY seq")
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
        for part in ids.chunks(500) {
            let placeholders: Vec<String> = (1..=part.len()).map(|n| format!("${n}")).collect();
            let sql = format!("SELECT id, seq FROM documents WHERE id IN ({})", placeholders.join(", "));
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
    pub async fn compact_document(&self, id: DocId, snapshot: &[u8], through: i64) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let seq = next_seq(&mut tx, id).await?;
        sqlx::query("DELETE FROM doc_chunks WHERE doc_id = $1 AND seq <= $2")
            .bind(id.to_string())
            .bind(through)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO doc_chunks (doc_id, is_snapshot, data, created_at, seq) VALUES ($1, 1, $2, $3, $4)")
            .bind(id.to_string())
            .bind(snapshot)
            .bind(now_ms())
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(seq)
    }
}

/// Takes a document's next sequence number. The row lock this takes orders
/// every writer of the document until the transaction ends.
async fn next_seq(tx: &mut sqlx::Transaction<'_, sqlx::Any>, id: DocId) -> Result<i64, StoreError> {
    let row = sqlx::query("UPDATE documents SET seq = seq + 1 WHERE id = $1 RETURNING seq")
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::Corrupt("a chunk for a document that does not exist".into()))?;
    Ok(row.get(0))
}
