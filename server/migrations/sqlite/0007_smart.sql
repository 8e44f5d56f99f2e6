-- SMART on FHIR: third-party patient apps (App Launch 2.0, standalone) and
-- clinic systems (Backend Services). Codes and tokens are stored only as
-- their SHA-256 hashes.

-- A registered client. kind 'public': a patient app with one exact
-- redirect URI (no secret; PKCE proves the code's requester). kind
-- 'system': a clinic system with its public keys (a JWK Set, JSON) that
-- imports into its clinic's record.
CREATE TABLE smart_clients (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('public', 'system')),
    redirect_uri TEXT,
    clinic_id TEXT REFERENCES clinics(id),
    jwks TEXT,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- A person's approval of a patient app reading one patient's record with
-- these scopes. Revoking it (or signing out everywhere) ends its codes and tokens.
CREATE TABLE smart_grants (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES smart_clients(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    scope TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX smart_grants_user ON smart_grants (user_id);

-- One-time authorization codes: used_at is set by the one exchange that wins.
CREATE TABLE smart_codes (
    code_hash TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL REFERENCES smart_grants(id),
    redirect_uri TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

-- Access tokens: a patient app's (grant_id) or a clinic system's (client_id only).
CREATE TABLE smart_tokens (
    token_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES smart_clients(id),
    grant_id TEXT REFERENCES smart_grants(id),
    scope TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Client assertion ids seen, kept until the assertion expires: a jti is used once.
CREATE TABLE smart_assertions (
    client_id TEXT NOT NULL REFERENCES smart_clients(id),
    jti TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
