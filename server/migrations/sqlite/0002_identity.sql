-- Identity and access: passkeys, sign-in ceremonies, enrollment links,
-- sessions and the audit trail. Secrets (session cookies, enrollment tokens,
-- ceremony ids) are stored only as SHA-256 hashes (hex).

-- A revoked user (e.g. a caregiver whose access the patient withdrew) can no
-- longer sign in and their sessions end.
ALTER TABLE users ADD COLUMN revoked_at BIGINT;

-- A user's named passkeys. `passkey` is webauthn-rs's serialised credential
-- (public key, counter, backup state); `credential_id` is base64url.
CREATE TABLE passkeys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    credential_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    passkey TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX passkeys_user ON passkeys (user_id);

-- One-time enrollment links: only the hash of the token is kept.
CREATE TABLE enrollments (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    created_by TEXT REFERENCES users(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX enrollments_user ON enrollments (user_id);

-- WebAuthn ceremony state between start and finish: short-lived and deleted
-- when used. kind: enroll | register | login.
CREATE TABLE ceremonies (
    id_hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    user_id TEXT REFERENCES users(id),
    enrollment_hash TEXT,
    passkey_name TEXT,
    state TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Server-side sessions. `id` is public (audit rows name it); the cookie value
-- is secret and only its hash is kept. Each session has its own Automerge
-- actor id, bound to the user in `actors`.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users(id),
    actor_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Who did what, when. Never updated or deleted; detail holds no clinical content.
CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    user_id TEXT,
    session_id TEXT,
    action TEXT NOT NULL,
    patient_id TEXT,
    doc_id TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX audit_events_patient ON audit_events (patient_id, at);
