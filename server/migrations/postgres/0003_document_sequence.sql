-- A per-document change sequence, so that several server instances sharing
-- this database can tell what they have not loaded yet. Every stored chunk
-- (incremental or snapshot) takes the document's next number in the same
-- transaction that inserts it; the row lock on `documents` orders writers of
-- one document, so the numbers a reader sees are always a gap-free prefix.
ALTER TABLE documents ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE doc_chunks ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
UPDATE doc_chunks SET seq = id;
UPDATE documents SET seq = COALESCE((SELECT MAX(c.id) FROM doc_chunks c WHERE c.doc_id = documents.id), 0);
CREATE INDEX doc_chunks_seq ON doc_chunks (doc_id, seq);
