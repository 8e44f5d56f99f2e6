//! The demo data set seeds once, passes the write policy, and has history.

use server::demo;
use shared::api::UserRole;
use shared::schema::{ClinicalRecord, DocKind};
use testkit::TestDatabase;

use crate::BACKENDS;

#[tokio::test]
async fn demo_data_seeds_once_with_years_of_history() {
    for backend in BACKENDS {
        let db = TestDatabase::new(backend).await;
        let store = db.store().await;
        let users = demo::seed(&store).await.unwrap();
        assert_eq!(
            demo::seed(&store).await.unwrap().len(),
            users.len(),
            "seeding again is a no-op"
        );
        let maria = users.iter().find(|u| u.role == UserRole::Patient).unwrap();
        let patient = maria.patient.unwrap();
        let docs = store.patient_documents(patient).await.unwrap();
        assert_eq!(
            docs.len(),
            5,
            "{backend:?}: a patient record plus a clinical record and thread per clinic"
        );

        let mut observations = 0;
        let mut prescriptions = 0;
        for row in docs {
            let stored = store.load_document(row.id).await.unwrap().unwrap();
            let doc = stored.to_automerge().unwrap();
            if let DocKind::ClinicalRecord { .. } = row.kind {
                let record: ClinicalRecord = autosurgeon::hydrate(&doc).unwrap();
                observations += record.observations.len();
                prescriptions += record.prescriptions.len();
                let years: std::collections::BTreeSet<_> =
                    record.observations.values().map(|o| o.effective[..4].to_owned()).collect();
                assert!(years.len() >= 5, "{backend:?}: results span years: {years:?}");
            }
        }
        assert!(observations > 100, "{backend:?}: {observations}");
        assert!(prescriptions >= 4);
        store.close().await;
        db.drop_database().await;
    }
}
