//! Issue 17 part 2: a large clinic's browser keeps only the patients that
//! matter for offline work, in real Chromium against a real server.

use chrono::DateTime;
use e2e::demo::DemoPortal;
use e2e::wait_for_service_worker;
use testkit::clinic::{Seeded, seed_clinic};

/// Patients seeded besides the demo's: more than a page of the list, with
/// six in the clinic's work today (`testkit::clinic::WORK_EVERY`).
const PATIENTS: usize = 600;

/// A provider with many patients sees the list from the server and pins a
/// patient; offline, a patient not on the device says it needs the
/// network; reloaded offline, the pinned patient and the work queue's
/// (an appointment today, a refill request, an unread message) open from
/// the device and nobody else is listed; back online, another patient
/// opens on demand. Screenshots of the list at 1280 and 390 px.
#[tokio::test]
async fn a_provider_keeps_the_patients_that_matter_offline() {
    let portal = DemoPortal::start().await;
    let okafor = portal.user("Okafor");
    let clinic = okafor.clinics[0];
    let now = DateTime::from_timestamp_millis(portal.app.clock.now_ms()).expect("a time");
    let seeded = seed_clinic(
        &portal.app.store,
        (clinic, "Riverside Family Practice"),
        (okafor.id, okafor.name),
        PATIENTS,
        now,
    )
    .await
    .expect("seed the clinic");
    portal
        .browser
        .scenario("staff offline", async {
            let provider = portal.enroll("Okafor").await;
            // The list comes from the server: a page of it, by name.
            provider.wait_for(".patients", "Ada Abara").await;
            wait_for_service_worker(&provider.page).await;
            let find = |i: usize| -> &Seeded { &seeded[i] };
            let (appointment, request, message) = (find(0), find(1), find(2));
            let (pinned, unpinned, later) = (find(10), find(20), find(30));
            assert!(!pinned.work && !unpinned.work && !later.work && appointment.work);

            search(&provider, pinned).await;
            provider.click(".patients button.link", "Pin for offline").await;
            provider.wait_for(".patients li", "On this device").await;
            provider.wait_for(".patients button.link", "Unpin").await;
            for p in [appointment, request, message] {
                search(&provider, p).await;
                provider.wait_for(".patients li", "On this device").await;
            }
            search(&provider, unpinned).await;
            provider
                .never_shows(".patients", "On this device", std::time::Duration::from_millis(500))
                .await;
            provider.wait_for(".sync-status", "last synced").await;
            for (width, mobile) in [(1280, false), (390, true)] {
                provider.set_width(width, mobile).await;
                provider.type_into("#patient-search", "").await;
                provider.wait_for(".patients", "Ada Abara").await;
                let shot = provider.screenshot(&format!("patient list {width}")).await;
                eprintln!("patient list at {width} px: {}", shot.display());
                let overflow = provider.sideways_overflow().await;
                provider
                    .check(
                        overflow.is_empty(),
                        &format!("nothing sideways at {width}: {overflow:?}"),
                    )
                    .await;
            }
            provider.set_width(1280, false).await;

            // Offline: the list still names the unpinned patient, who needs
            // the network.
            search(&provider, unpinned).await;
            provider.go_offline().await;
            provider.wait_for(".sync-status", "Offline").await;
            provider.click("button.patient", &unpinned.name).await;
            provider.wait_for("main [role=alert]", "is not on this device").await;
            provider.wait_for("main [role=alert]", "Connect to the network").await;

            // Reloaded offline: the device's patients only.
            provider.page.reload().await.expect("reload");
            provider.wait_for(".sync-status", "Offline").await;
            provider.wait_for("main", "patients not on this device need the network").await;
            for p in [pinned, appointment, request, message] {
                open(&provider, p).await;
            }
            provider.type_into("#patient-search", &unpinned.birth_date).await;
            provider.wait_for("main", "No patients match").await;

            // Back online: another patient opens on demand. The search is
            // typed at once, while the device reconnects: the list keeps it,
            // and the offline set is asked for again if the first ask raced
            // the network coming back (no stale "could not refresh").
            provider.go_online().await;
            search(&provider, later).await;
            provider.wait_for("button.patient", &later.name).await;
            open(&provider, later).await;
            provider.wait_for(".sync-status", "last synced").await;
            provider
                .never_shows("body", "Could not refresh", std::time::Duration::from_millis(500))
                .await;
        })
        .await;
    portal.stop().await;
}

/// Searches the list by the patient's birth date (one patient each).
async fn search(provider: &e2e::Person, p: &Seeded) {
    provider.type_into("#patient-search", &p.birth_date).await;
    provider.wait_for(".patients", &p.name).await;
}

/// Opens the patient's chart from the list and goes back to the list.
async fn open(provider: &e2e::Person, p: &Seeded) {
    search(provider, p).await;
    provider.click("button.patient", &p.name).await;
    provider.wait_for(".chart-head h2", &format!("{}, born {}", p.name, p.birth_date)).await;
    provider.click(".chart-head button", "All patients").await;
}

/// New work arriving live: Dr. Okafor's browser is open on To do when a
/// patient outside his offline set (no work at the clinic, never opened
/// on this device) writes to the clinic from her own device. The server
/// tells his device to list again; the patient's documents arrive and the
/// message shows in To do within the wait, without a reload; offline, the
/// item opens her conversation from the device.
#[tokio::test]
async fn new_work_from_a_patient_outside_the_offline_set_arrives_live() {
    use automerge::Automerge;
    use shared::api::UserRole;
    use shared::schema::{DocKind, Message};
    use shared::status::Side;
    use shared::sync::SyncClient;

    const QUESTION: &str = "Can I take ibuprofen with my new tablets?";
    let portal = DemoPortal::start().await;
    let okafor = portal.user("Okafor");
    let clinic = okafor.clinics[0];
    let now = DateTime::from_timestamp_millis(portal.app.clock.now_ms()).expect("a time");
    let seeded = seed_clinic(
        &portal.app.store,
        (clinic, "Riverside Family Practice"),
        (okafor.id, okafor.name),
        20,
        now,
    )
    .await
    .expect("seed the clinic");
    let asking = &seeded[10];
    assert!(!asking.work);
    let account = server::storage::NewUser {
        id: shared::UserId::mint(),
        display_name: asking.name.clone(),
        role: UserRole::Patient,
        patient: Some(asking.patient),
        may_message: false,
        clinics: Vec::new(),
    };
    portal.app.store.create_user(&account, now.timestamp_millis()).await.expect("her account");
    portal
        .browser
        .scenario("staff offline: new work live", async {
            let provider = portal.enroll("Okafor").await;
            provider.wait_for(".patients", "Ada Abara").await;
            wait_for_service_worker(&provider.page).await;
            provider.wait_for(".sync-status", "last synced").await;
            provider.click("#nav-todo", "To do").await;
            provider.wait_for("#todo-h", "To do").await;
            provider
                .never_shows(".todo", &asking.name, std::time::Duration::from_millis(300))
                .await;

            // She writes from her own device (a native replica).
            let thread = DocKind::MessageThread { patient: asking.patient, clinic }.doc_id();
            let mut client = SyncClient::new("her-phone");
            client.insert(thread, Automerge::new());
            let url = format!("{}/sync", portal.app.base_url.replacen("http", "ws", 1));
            let identity = [("x-portal-test-user", account.id.to_string())];
            let mut phone =
                testkit::Replica::connect(&url, &identity, client).await.expect("her phone");
            let wait = std::time::Duration::from_secs(30);
            phone.sync_all(wait).await.expect("her thread");
            let doc = phone.client.doc_mut(thread).expect("her thread");
            doc.set_actor(automerge::ActorId::random());
            let mut tx = doc.transaction();
            let message = Message::new(
                account.id,
                account.display_name.clone(),
                Side::Patient,
                now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                QUESTION,
            );
            shared::record::add(&mut tx, shared::EntryId::mint(), &message).expect("a message");
            tx.commit();
            phone.flush_local().await.expect("send");
            phone.sync_all(wait).await.expect("stored");
            phone.close().await;

            // It reaches his To do live.
            let item = provider.wait_for(".todo-item", QUESTION).await;
            provider
                .check(item.contains(&asking.name), &format!("the item names her: {item}"))
                .await;
            provider.wait_for(".sync-status", "last synced").await;

            // Offline, the item opens her conversation from the device.
            provider.go_offline().await;
            provider.wait_for(".sync-status", "Offline").await;
            provider.click(".todo-item button.link", &asking.name).await;
            let head = format!("{}, born {}", asking.name, asking.birth_date);
            provider.wait_for(".chart-head h2", &head).await;
            provider.wait_for("main", QUESTION).await;
        })
        .await;
    portal.stop().await;
}
