-- New entries each person added to each document per UTC day, counted in
-- the transaction that stores them, so a per-day quota holds across
-- connections and instances.
CREATE TABLE entry_counts (
    user_id TEXT NOT NULL REFERENCES users(id),
    doc_id TEXT NOT NULL REFERENCES documents(id),
    day BIGINT NOT NULL,
    entries BIGINT NOT NULL,
    PRIMARY KEY (user_id, doc_id, day)
);
