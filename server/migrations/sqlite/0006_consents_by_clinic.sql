-- A clinic's consenting patients (a provider's readable documents, the
-- patient list) are found from the clinic; the primary key starts with the
-- patient.
CREATE INDEX consents_clinic ON consents (clinic_id, patient_id);
