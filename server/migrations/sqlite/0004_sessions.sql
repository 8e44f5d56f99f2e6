-- Sessions know the passkey that made them, and when their holder last
-- proved presence with a passkey; passkeys know why they ended; enrollment
-- links can be cancelled by the person they are for.

-- The passkey a session was signed in (or enrolled) with: removing that
-- passkey ends the session. NULL only for sessions started by operator tools.
ALTER TABLE sessions ADD COLUMN passkey_id TEXT;
-- When the session's holder last used a passkey (sign-in, enrollment or a
-- re-authentication), in ms: adding a passkey, inviting a caregiver and
-- issuing enrollment links need this to be recent.
ALTER TABLE sessions ADD COLUMN verified_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX sessions_passkey ON sessions (passkey_id);

-- The passkey whose session added this one (NULL: added with an enrollment link).
ALTER TABLE passkeys ADD COLUMN added_with TEXT;
-- Why a passkey ended: 'removed' by its owner, or 'replaced' when an
-- enrollment link was used for an account that already had passkeys.
ALTER TABLE passkeys ADD COLUMN revoked_reason TEXT;

-- A link cancelled by the person it was issued for (or made moot because
-- another link of theirs was used) can no longer be used.
ALTER TABLE enrollments ADD COLUMN cancelled_at BIGINT;

-- A counter that every change to who may read what moves on (consents,
-- memberships, revoked users): each instance reads it every few seconds and,
-- when it moved, makes its sync sockets re-read their access, even if the
-- notification of the change never arrived.
CREATE TABLE access_version (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO access_version (id, version) VALUES (1, 0);

-- Sessions started before this migration are tied to no passkey, so
-- removing a passkey could not end them: end them all once; people sign in
-- again with a passkey.
UPDATE sessions SET revoked_at = CAST(strftime('%s', 'now') AS BIGINT) * 1000 WHERE revoked_at IS NULL;
