-- Issue 17 part 2: when each row of open work was last written (ms), so a
-- device's offline set, capped at `MAX_WORK` patients, takes the patients
-- with the most recent work first: a patient who just wrote is always in
-- it, however many others have work waiting. Rows from before it rank
-- last until their document next changes.
ALTER TABLE patient_work ADD COLUMN changed_ms BIGINT NOT NULL DEFAULT 0;
