-- What a clinic's admin says about it (issue 14, admin pages): a phone
-- number for patients, and how many working days the clinic takes to
-- answer a message (patients read it above every conversation, with the
-- notice that messages are not for emergencies).
ALTER TABLE clinics ADD COLUMN phone TEXT NOT NULL DEFAULT '';
ALTER TABLE clinics ADD COLUMN reply_days BIGINT NOT NULL DEFAULT 2;
