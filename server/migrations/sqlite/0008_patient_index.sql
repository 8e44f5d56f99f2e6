-- Issue 17 part 2: what a clinic's patient list and offline set are read
-- from, so a provider's device never needs every patient's documents.
-- Both tables are derived from the documents (kept in the transaction
-- that stores each change, `Hub::commit`); neither grants any access: the
-- read policy (`read_access.rs`) decides who sees which row.

-- A patient's name and birth date as their patient record says them, and
-- `search`, the same lowercased, for the list's search.
CREATE TABLE patient_index (
    patient_id TEXT PRIMARY KEY REFERENCES patients(id),
    name TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    search TEXT NOT NULL
);

-- Open work of a patient at one clinic, by source: 'requests' (refill
-- requests waiting for the clinic: their count), 'messages' (the
-- patient's messages the clinic has not read: their count),
-- 'appointments' (days of booked appointments, YYYY-MM-DD, space
-- separated). A row is present only while there is something.
CREATE TABLE patient_work (
    clinic_id TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    source TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (clinic_id, patient_id, source)
);
