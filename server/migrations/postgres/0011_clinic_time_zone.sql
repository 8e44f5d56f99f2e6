-- Issue 17 part 2: a clinic's time zone (an IANA name, checked by the
-- server where it is set: `server::zone`), so "today" for its work queue
-- and staff's offline set is the clinic's day, not the server's UTC date.
-- Clinics stored before it keep the server's former behaviour (UTC) until
-- their admin sets it.
ALTER TABLE clinics ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';
