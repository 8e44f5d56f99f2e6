-- Databases made before 0008 hold documents but no rows in patient_index
-- and patient_work. This row asks the server to derive them from every
-- document (`sync::backfill`) and records how far it got, by document id,
-- so a restart resumes; the server deletes it when done. `portal reindex`
-- asks for it again.
CREATE TABLE index_backfill (
    after_id TEXT NOT NULL
);
INSERT INTO index_backfill (after_id) SELECT '' WHERE EXISTS (SELECT 1 FROM documents);
