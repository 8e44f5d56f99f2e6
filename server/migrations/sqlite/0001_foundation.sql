-- Directory: clinics, people and who may see whose record.
CREATE TABLE clinics (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE patients (
    id TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);

-- role: patient | caregiver | provider | admin. A patient or caregiver user
-- names the patient they act for; providers and admins belong to clinics.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('patient', 'caregiver', 'provider', 'admin')),
    patient_id TEXT REFERENCES patients(id),
    may_message BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE memberships (
    user_id TEXT NOT NULL REFERENCES users(id),
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    PRIMARY KEY (user_id, clinic_id)
);

-- A patient's grant of access to a clinic. Revoking keeps the row (history).
CREATE TABLE consents (
    patient_id TEXT NOT NULL REFERENCES patients(id),
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    granted_at BIGINT NOT NULL,
    revoked_at BIGINT,
    PRIMARY KEY (patient_id, clinic_id)
);

-- Automerge actor ids, each bound to one user: a change is accepted only from
-- the user its actor id belongs to.
CREATE TABLE actors (
    actor_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL
);

-- Documents and their stored bytes: one snapshot plus the incremental
-- changes saved after it; compaction folds them into a new snapshot.
CREATE TABLE documents (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    patient_id TEXT NOT NULL REFERENCES patients(id),
    clinic_id TEXT REFERENCES clinics(id),
    created_at BIGINT NOT NULL
);
CREATE INDEX documents_patient ON documents (patient_id);

CREATE TABLE doc_chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL REFERENCES documents(id),
    is_snapshot BIGINT NOT NULL,
    data BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX doc_chunks_doc ON doc_chunks (doc_id, id);
