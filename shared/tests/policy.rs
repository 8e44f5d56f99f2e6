//! The write policy, table-driven: every edit below is tried by every role and
//! must be allowed or denied exactly as its row says. Someone with no write
//! right to a kind of document at all is refused as such (not-permitted, or
//! foreign-clinic for another clinic's staff) before anything they wrote is
//! looked at.

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, Automerge, Change, ROOT};
use shared::record::{self, Entry};
use shared::schema::{
    Appointment, DocKind, Message, Observation, Prescription, Provenance, RefillRequest,
};
use shared::status::{AppointmentStatus, PrescriptionStatus, RefillStatus, ResultStatus, Side};
use shared::{
    ClinicId, EntryId, PatientId, Principal, Role, Rule, UserId, check_change, check_entries,
    check_ops,
};

/// The people in the table, in column order.
const ROLES: [&str; 7] = [
    "patient",
    "caregiver_rw",
    "caregiver_ro",
    "provider_a",
    "provider_b",
    "admin_a",
    "other_patient",
];

struct World {
    patient: PatientId,
    clinic_a: ClinicId,
    clinic_b: ClinicId,
    people: Vec<Principal>,
    colleague: UserId,
    observation: EntryId,
    voided_observation: EntryId,
    prescription: EntryId,
    appointment: EntryId,
    /// The patient's request for an appointment, `proposed`.
    request: EntryId,
    refill: EntryId,
    patient_message: EntryId,
    provider_message: EntryId,
}

impl World {
    fn new() -> Self {
        let patient = PatientId::mint();
        let clinic_a = ClinicId::mint();
        let clinic_b = ClinicId::mint();
        // Everyone is called "Dr Example" and every clinic "Clinic": the
        // fixtures carry the directory's names (see `a_name_that_is_not_the_directorys`).
        let clinic_names = vec![(clinic_a, "Clinic".to_owned()), (clinic_b, "Clinic".to_owned())];
        let principal = |role| Principal {
            user: UserId::mint(),
            role,
            name: "Dr Example".into(),
            clinic_names: clinic_names.clone(),
            colleagues: vec![],
        };
        let people = vec![
            principal(Role::Patient { patient }),
            principal(Role::Caregiver { patient, may_message: true }),
            principal(Role::Caregiver { patient, may_message: false }),
            principal(Role::Provider { clinics: vec![clinic_a] }),
            principal(Role::Provider { clinics: vec![clinic_b] }),
            principal(Role::ClinicAdmin { clinic: clinic_a }),
            principal(Role::Patient { patient: PatientId::mint() }),
        ];
        Self {
            patient,
            clinic_a,
            clinic_b,
            people,
            colleague: UserId::mint(),
            observation: EntryId::mint(),
            voided_observation: EntryId::mint(),
            prescription: EntryId::mint(),
            appointment: EntryId::mint(),
            request: EntryId::mint(),
            refill: EntryId::mint(),
            patient_message: EntryId::mint(),
            provider_message: EntryId::mint(),
        }
    }

    fn who(&self, role: &str) -> &Principal {
        &self.people[ROLES.iter().position(|r| *r == role).unwrap()]
    }

    fn clinical(&self) -> DocKind {
        DocKind::ClinicalRecord { patient: self.patient, clinic: self.clinic_a }
    }

    fn patient_record(&self) -> DocKind {
        DocKind::PatientRecord { patient: self.patient }
    }

    fn thread(&self) -> DocKind {
        DocKind::MessageThread { patient: self.patient, clinic: self.clinic_a }
    }

    fn provenance(&self, clinic: ClinicId, recorder: UserId) -> Provenance {
        Provenance {
            clinic,
            clinic_name: "Clinic".into(),
            recorder,
            recorder_name: "Dr Example".into(),
            recorded: "2026-01-05T09:00:00Z".into(),
        }
    }

    fn observation(&self, clinic: ClinicId, recorder: UserId) -> Observation {
        Observation {
            report: None,
            loinc: "4548-4".into(),
            display: "Hemoglobin A1c".into(),
            value_quantity: Some(6.1),
            value_string: None,
            unit: Some("%".into()),
            reference_low: Some(4.0),
            reference_high: Some(5.6),
            effective: "2026-01-05T08:00:00Z".into(),
            status: ResultStatus::Final,
            replaces: None,
            provenance: self.provenance(clinic, recorder),
            status_reason: None,
            status_by: None,
            status_at: None,
            interpretation: None,
        }
    }

    fn message(&self, author: UserId, side: Side) -> Message {
        Message::new(author, "Dr Example", side, "2026-01-05T10:00:00Z", "Hello")
    }

    /// The document an edit applies to, with entries written by their rightful authors.
    fn base(&self, kind: DocKind) -> AutoCommit {
        let mut doc = AutoCommit::load(&kind.genesis().save()).unwrap();
        let provider_a = self.who("provider_a").user;
        match kind {
            DocKind::ClinicalRecord { .. } => {
                record::add(
                    &mut doc,
                    self.observation,
                    &self.observation(self.clinic_a, provider_a),
                )
                .unwrap();
                record::add(
                    &mut doc,
                    self.voided_observation,
                    &self.observation(self.clinic_a, provider_a),
                )
                .unwrap();
                record::change_status(
                    &mut doc,
                    Observation::COLLECTION,
                    self.voided_observation,
                    "entered-in-error",
                    "wrong patient",
                    provider_a,
                    "2026-01-06T00:00:00Z",
                )
                .unwrap();
                let prescription = Prescription {
                    rxnorm: "861007".into(),
                    display: "metformin hydrochloride 500 MG Oral Tablet".into(),
                    dosage: "1 tablet twice daily".into(),
                    quantity: 60,
                    refills_allowed: 3,
                    authored: "2026-01-05T09:00:00Z".into(),
                    status: PrescriptionStatus::Active,
                    provenance: self.provenance(self.clinic_a, provider_a),
                    status_reason: None,
                    status_by: None,
                    status_at: None,
                    override_reason: None,
                };
                record::add(&mut doc, self.prescription, &prescription).unwrap();
                record::add(&mut doc, self.appointment, &self.appointment(provider_a)).unwrap();
                let patient = self.who("patient").user;
                record::request_appointment(
                    &mut doc,
                    self.request,
                    "Knee pain",
                    "Mornings",
                    &self.provenance(self.clinic_a, patient),
                )
                .unwrap();
            }
            DocKind::PatientRecord { .. } => {
                let request = RefillRequest {
                    prescription: self.prescription,
                    clinic: self.clinic_a,
                    requested_by: self.who("patient").user,
                    requested_at: "2026-01-07T00:00:00Z".into(),
                    note: String::new(),
                    status: RefillStatus::Requested,
                    decided_by: None,
                    decided_at: None,
                    decision_note: None,
                };
                record::add(&mut doc, self.refill, &request).unwrap();
            }
            DocKind::MessageThread { .. } => {
                record::add(
                    &mut doc,
                    self.patient_message,
                    &self.message(self.who("patient").user, Side::Patient),
                )
                .unwrap();
                // The clinic's message starts a conversation; the
                // patient's is from before conversations.
                let first = Message {
                    topic: Some("Your results".into()),
                    about: Some(self.observation),
                    ..self.message(provider_a, Side::Clinic)
                };
                record::add(&mut doc, self.provider_message, &first).unwrap();
            }
        }
        doc
    }

    fn appointment(&self, recorder: UserId) -> Appointment {
        Appointment {
            start: "2026-02-01T09:30:00Z".into(),
            reason: "Diabetes review".into(),
            status: AppointmentStatus::Booked,
            provenance: self.provenance(self.clinic_a, recorder),
            status_reason: None,
            status_by: None,
            status_at: None,
            preferred: None,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Edit {
    AddObservation,
    AddObservationForClinicB,
    AddObservationAsColleague,
    ChangeLabValue,
    DeleteObservation,
    MarkInError,
    MarkInErrorWithoutReason,
    ReviveEnteredInError,
    StopPrescription,
    AddRootKey,
    AddAppointment,
    CancelAppointment,
    RequestAppointment,
    ConfirmRequest,
    BookRequestWithoutTime,
    DeclineRequestWithoutReason,
    MoveBookedTime,
    ChangeRequestReason,
    ChangeDemographics,
    AddRefillRequest,
    ApproveRefill,
    CancelRefill,
    SendMessage,
    StartConversation,
    Reply,
    ReplyToMessageBeforeConversations,
    ReplyToMissingConversation,
    ReplyWithItsOwnTopic,
    SendMessageAsColleague,
    MarkProviderMessageRead,
    ChangeMessageBody,
    DeleteMessage,
}

impl Edit {
    fn kind(self, w: &World) -> DocKind {
        use Edit::*;
        match self {
            ChangeDemographics | AddRefillRequest | ApproveRefill | CancelRefill => {
                w.patient_record()
            }
            SendMessage
            | StartConversation
            | Reply
            | ReplyToMessageBeforeConversations
            | ReplyToMissingConversation
            | ReplyWithItsOwnTopic
            | SendMessageAsColleague
            | MarkProviderMessageRead
            | ChangeMessageBody
            | DeleteMessage => w.thread(),
            _ => w.clinical(),
        }
    }

    fn apply(self, w: &World, who: &Principal, doc: &mut AutoCommit) {
        use Edit::*;
        let now = "2026-03-01T12:00:00Z";
        let me = who.user;
        let entry = |doc: &mut AutoCommit, id: EntryId| {
            let coll = doc.get(ROOT, self.collection()).unwrap().unwrap().1;
            doc.get(coll, id.to_string()).unwrap().unwrap().1
        };
        match self {
            AddObservation => {
                record::add(doc, EntryId::mint(), &w.observation(w.clinic_a, me)).unwrap()
            }
            AddObservationForClinicB => {
                record::add(doc, EntryId::mint(), &w.observation(w.clinic_b, me)).unwrap()
            }
            AddObservationAsColleague => {
                record::add(doc, EntryId::mint(), &w.observation(w.clinic_a, w.colleague)).unwrap()
            }
            ChangeLabValue => {
                let obs = entry(doc, w.observation);
                doc.put(obs, "value_quantity", 5.2).unwrap();
            }
            DeleteObservation => {
                let coll = doc.get(ROOT, "observations").unwrap().unwrap().1;
                doc.delete(coll, w.observation.to_string()).unwrap();
            }
            MarkInError => record::change_status(
                doc,
                Observation::COLLECTION,
                w.observation,
                "entered-in-error",
                "wrong patient",
                me,
                now,
            )
            .unwrap(),
            MarkInErrorWithoutReason => record::change_status(
                doc,
                Observation::COLLECTION,
                w.observation,
                "entered-in-error",
                " ",
                me,
                now,
            )
            .unwrap(),
            ReviveEnteredInError => record::change_status(
                doc,
                Observation::COLLECTION,
                w.voided_observation,
                "final",
                "oops",
                me,
                now,
            )
            .unwrap(),
            StopPrescription => record::change_status(
                doc,
                Prescription::COLLECTION,
                w.prescription,
                "stopped",
                "side effects",
                me,
                now,
            )
            .unwrap(),
            AddRootKey => {
                doc.put(ROOT, "notes", "anything").unwrap();
            }
            AddAppointment => record::add(doc, EntryId::mint(), &w.appointment(me)).unwrap(),
            CancelAppointment => record::change_status(
                doc,
                Appointment::COLLECTION,
                w.appointment,
                "cancelled",
                "patient request",
                me,
                now,
            )
            .unwrap(),
            RequestAppointment => record::request_appointment(
                doc,
                EntryId::mint(),
                "Knee pain",
                "",
                &w.provenance(w.clinic_a, me),
            )
            .unwrap(),
            ConfirmRequest => record::move_appointment(
                doc,
                w.request,
                AppointmentStatus::Booked,
                Some("2026-03-05T09:00:00Z"),
                "",
                me,
                now,
            )
            .unwrap(),
            BookRequestWithoutTime => record::move_appointment(
                doc,
                w.request,
                AppointmentStatus::Booked,
                None,
                "",
                me,
                now,
            )
            .unwrap(),
            DeclineRequestWithoutReason => record::move_appointment(
                doc,
                w.request,
                AppointmentStatus::Cancelled,
                None,
                " ",
                me,
                now,
            )
            .unwrap(),
            MoveBookedTime => {
                let appointment = entry(doc, w.appointment);
                doc.put(appointment, "start", "2026-02-02T09:30:00Z").unwrap();
            }
            ChangeRequestReason => {
                let request = entry(doc, w.request);
                doc.put(request, "reason", "Something else").unwrap();
            }
            ChangeDemographics => {
                let demographics = shared::schema::Demographics {
                    phone: Some("+1 555 0100".into()),
                    ..Default::default()
                };
                record::set_demographics(doc, &demographics).unwrap();
            }
            AddRefillRequest => {
                let request = RefillRequest {
                    prescription: w.prescription,
                    clinic: w.clinic_a,
                    requested_by: me,
                    requested_at: now.into(),
                    note: "Running low".into(),
                    status: RefillStatus::Requested,
                    decided_by: None,
                    decided_at: None,
                    decision_note: None,
                };
                record::add(doc, EntryId::mint(), &request).unwrap();
            }
            ApproveRefill => record::decide_refill(
                doc,
                w.refill,
                RefillStatus::Approved,
                me,
                now,
                "Sent to pharmacy",
            )
            .unwrap(),
            CancelRefill => {
                let request = entry(doc, w.refill);
                doc.put(request, "status", "cancelled").unwrap();
            }
            SendMessage => record::add(doc, EntryId::mint(), &w.message(me, who.side())).unwrap(),
            StartConversation => {
                let first = Message {
                    topic: Some("My knee".into()),
                    about: Some(w.observation),
                    ..w.message(me, who.side())
                };
                record::add(doc, EntryId::mint(), &first).unwrap()
            }
            Reply | ReplyToMessageBeforeConversations | ReplyToMissingConversation => {
                let first = match self {
                    Reply => w.provider_message,
                    ReplyToMessageBeforeConversations => w.patient_message,
                    _ => EntryId::mint(),
                };
                let reply = Message { in_response_to: Some(first), ..w.message(me, who.side()) };
                record::add(doc, EntryId::mint(), &reply).unwrap()
            }
            ReplyWithItsOwnTopic => {
                let reply = Message {
                    in_response_to: Some(w.provider_message),
                    topic: Some("Something else".into()),
                    ..w.message(me, who.side())
                };
                record::add(doc, EntryId::mint(), &reply).unwrap()
            }
            SendMessageAsColleague => {
                record::add(doc, EntryId::mint(), &w.message(w.colleague, who.side())).unwrap()
            }
            MarkProviderMessageRead => record::mark_read(doc, w.provider_message, me, now).unwrap(),
            ChangeMessageBody => {
                let message = entry(doc, w.patient_message);
                doc.put(message, "body", "I never said that").unwrap();
            }
            DeleteMessage => {
                let coll = doc.get(ROOT, "messages").unwrap().unwrap().1;
                doc.delete(coll, w.patient_message.to_string()).unwrap();
            }
        }
    }

    fn collection(self) -> &'static str {
        use Edit::*;
        match self {
            ApproveRefill | CancelRefill => "refill_requests",
            MarkProviderMessageRead | ChangeMessageBody => "messages",
            MoveBookedTime | ChangeRequestReason => "appointments",
            _ => "observations",
        }
    }
}

use automerge::ReadDoc;

const OK: Option<Rule> = None;
const NP: Option<Rule> = Some(Rule::NotPermitted);
const FC: Option<Rule> = Some(Rule::ForeignClinic);
const AO: Option<Rule> = Some(Rule::AppendOnly);
const IA: Option<Rule> = Some(Rule::ImpersonatedAuthor);
const IF: Option<Rule> = Some(Rule::ImmutableField);
const ST: Option<Rule> = Some(Rule::StatusTransition);
const MR: Option<Rule> = Some(Rule::MissingReason);
const SC: Option<Rule> = Some(Rule::Schema);

#[rustfmt::skip]
const TABLE: &[(Edit, [Option<Rule>; 7])] = &[
    //                                 patient caregiver_rw caregiver_ro provider_a provider_b admin_a other_patient
    (Edit::AddObservation,            [NP,     NP,          NP,          OK,        FC,        NP,     NP]),
    (Edit::AddObservationForClinicB,  [NP,     NP,          NP,          FC,        FC,        NP,     NP]),
    (Edit::AddObservationAsColleague, [NP,     NP,          NP,          IA,        FC,        NP,     NP]),
    (Edit::ChangeLabValue,            [NP,     NP,          NP,          IF,        FC,        NP,     NP]),
    (Edit::DeleteObservation,         [AO,     AO,          NP,          AO,        FC,        AO,     NP]),
    (Edit::MarkInError,               [NP,     NP,          NP,          OK,        FC,        NP,     NP]),
    (Edit::MarkInErrorWithoutReason,  [NP,     NP,          NP,          MR,        FC,        NP,     NP]),
    (Edit::ReviveEnteredInError,      [NP,     NP,          NP,          ST,        FC,        NP,     NP]),
    (Edit::StopPrescription,          [NP,     NP,          NP,          OK,        FC,        NP,     NP]),
    (Edit::AddRootKey,                [SC,     SC,          NP,          SC,        FC,        SC,     NP]),
    (Edit::AddAppointment,            [ST,     ST,          NP,          OK,        FC,        OK,     NP]),
    (Edit::CancelAppointment,         [OK,     OK,          NP,          OK,        FC,        OK,     NP]),
    (Edit::RequestAppointment,        [OK,     OK,          NP,          OK,        FC,        OK,     NP]),
    (Edit::ConfirmRequest,            [IF,     IF,          NP,          OK,        FC,        OK,     NP]),
    (Edit::BookRequestWithoutTime,    [ST,     ST,          NP,          SC,        FC,        SC,     NP]),
    (Edit::DeclineRequestWithoutReason,[OK,    OK,          NP,          MR,        FC,        MR,     NP]),
    (Edit::MoveBookedTime,            [IF,     IF,          NP,          IF,        FC,        IF,     NP]),
    (Edit::ChangeRequestReason,       [IF,     IF,          NP,          IF,        FC,        IF,     NP]),
    (Edit::ChangeDemographics,          [OK,     NP,          NP,          NP,        NP,        NP,     NP]),
    (Edit::AddRefillRequest,          [OK,     OK,          NP,          NP,        NP,        NP,     NP]),
    (Edit::ApproveRefill,             [ST,     ST,          NP,          OK,        FC,        NP,     NP]),
    (Edit::CancelRefill,              [OK,     OK,          NP,          ST,        FC,        NP,     NP]),
    (Edit::SendMessage,               [OK,     OK,          NP,          OK,        FC,        NP,     NP]),
    (Edit::StartConversation,         [OK,     OK,          NP,          OK,        FC,        NP,     NP]),
    (Edit::Reply,                     [OK,     OK,          NP,          OK,        FC,        NP,     NP]),
    (Edit::ReplyToMessageBeforeConversations,[SC, SC,       NP,          SC,        FC,        NP,     NP]),
    (Edit::ReplyToMissingConversation,[SC,     SC,          NP,          SC,        FC,        NP,     NP]),
    (Edit::ReplyWithItsOwnTopic,      [SC,     SC,          NP,          SC,        FC,        NP,     NP]),
    (Edit::SendMessageAsColleague,    [IA,     IA,          NP,          IA,        FC,        NP,     NP]),
    (Edit::MarkProviderMessageRead,   [OK,     OK,          NP,          NP,        FC,        NP,     NP]),
    (Edit::ChangeMessageBody,           [IF,     IF,          NP,          IF,        FC,        NP,     NP]),
    (Edit::DeleteMessage,             [AO,     AO,          NP,          AO,        FC,        NP,     NP]),
];

#[test]
fn every_role_and_edit_is_decided_as_the_table_says() {
    let world = World::new();
    let mut mismatches = Vec::new();
    for (edit, expected_row) in TABLE {
        for (role, expected) in ROLES.iter().zip(expected_row) {
            let who = world.who(role);
            let kind = edit.kind(&world);
            let mut doc = world.base(kind);
            let before = doc.get_heads();
            let mut server = doc.document().clone();
            doc.set_actor(ActorId::random());
            edit.apply(&world, who, &mut doc);
            let got = check_change(doc.document(), &before, &kind, who).err().map(|d| d.rule);
            if got != *expected {
                mismatches.push(format!("{edit:?} by {role}: expected {expected:?}, got {got:?}"));
            }
            // The server's way: operations checked, then applied.
            let got = check_logged(&mut server, doc.document().get_changes(&before), &kind, who);
            if got != *expected {
                mismatches.push(format!(
                    "{edit:?} by {role} (server): expected {expected:?}, got {got:?}"
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{} mismatches:\n{}", mismatches.len(), mismatches.join("\n"));
}

#[test]
fn a_write_that_loses_a_conflict_is_still_checked() {
    let world = World::new();
    let kind = world.clinical();
    let mut base = world.base(kind);
    // The provider stops the prescription; concurrently the patient forges a
    // status write that loses the conflict (lower actor id), so it shows only
    // as a Conflict patch, not as a visible value.
    let mut provider = base.fork().with_actor(ActorId::from([0xff; 16].as_slice()));
    let provider_a = world.who("provider_a");
    record::change_status(
        &mut provider,
        Prescription::COLLECTION,
        world.prescription,
        "stopped",
        "side effects",
        provider_a.user,
        "2026-03-01T00:00:00Z",
    )
    .unwrap();
    let mut forger = base.fork().with_actor(ActorId::from([0x01; 16].as_slice()));
    let coll = forger.get(ROOT, "prescriptions").unwrap().unwrap().1;
    let rx = forger.get(coll, world.prescription.to_string()).unwrap().unwrap().1;
    forger.put(rx, "status", "completed").unwrap();

    let mut canonical = base.fork();
    canonical.merge(&mut provider).unwrap();
    let before = canonical.get_heads();
    canonical.merge(&mut forger).unwrap();
    let after = canonical.get_heads();
    let patches = canonical.document().diff(&before, &after);
    assert!(
        patches.iter().any(|p| matches!(p.action, automerge::PatchAction::Conflict { .. })),
        "{patches:?}"
    );

    let denial =
        check_change(canonical.document(), &before, &kind, world.who("patient")).unwrap_err();
    assert_eq!(denial.rule, Rule::NotPermitted);
    // Every value left at the field is checked against the status it had
    // before: stopped cannot become completed, even as a losing write.
    let denial = check_change(canonical.document(), &before, &kind, provider_a).unwrap_err();
    assert_eq!(denial.rule, Rule::StatusTransition);

    // The same, as the server does.
    let forged = canonical.document().get_changes(&before);
    for (who, rule) in
        [(world.who("patient"), Rule::NotPermitted), (provider_a, Rule::StatusTransition)]
    {
        let mut server = base.fork();
        server.merge(&mut provider).unwrap();
        let mut server = server.document().clone();
        assert_eq!(check_logged(&mut server, forged.clone(), &kind, who), Some(rule));
    }
}

/// The server's way: every operation checked before the changes are
/// applied, then the entries they touched, once applied.
fn check_logged(
    doc: &mut Automerge,
    changes: Vec<Change>,
    kind: &DocKind,
    who: &Principal,
) -> Option<Rule> {
    let verdict = check_ops(doc, &changes, kind, who).and_then(|plan| {
        doc.apply_changes(changes).unwrap();
        check_entries(doc, &plan, kind, who)
    });
    verdict.err().map(|d| d.rule)
}

#[test]
fn denials_name_the_rule_and_place_but_no_values() {
    let world = World::new();
    let kind = world.clinical();
    let mut doc = world.base(kind);
    let before = doc.get_heads();
    Edit::ChangeLabValue.apply(&world, world.who("provider_a"), &mut doc);
    let message = check_change(doc.document(), &before, &kind, world.who("provider_a"))
        .unwrap_err()
        .to_string();
    assert!(message.contains("immutable-field"), "{message}");
    assert!(
        message.contains(&format!("observations/{}/value_quantity", world.observation)),
        "{message}"
    );
    assert!(!message.contains("5.2"), "{message}");
}

#[test]
fn a_name_that_is_not_the_directorys_is_refused() {
    let world = World::new();
    let provider_a = world.who("provider_a");
    let patient = world.who("patient");
    type Edit<'a> = Box<dyn Fn(&mut AutoCommit) + 'a>;
    let cases: [(DocKind, &Principal, Edit<'_>); 3] = [
        (
            world.clinical(),
            provider_a,
            Box::new(|doc: &mut AutoCommit| {
                let mut observation = world.observation(world.clinic_a, provider_a.user);
                observation.provenance.recorder_name = "Dr Someone Else".into();
                record::add(doc, EntryId::mint(), &observation).unwrap();
            }),
        ),
        (
            world.clinical(),
            provider_a,
            Box::new(|doc: &mut AutoCommit| {
                let mut observation = world.observation(world.clinic_a, provider_a.user);
                observation.provenance.clinic_name = "Another Clinic".into();
                record::add(doc, EntryId::mint(), &observation).unwrap();
            }),
        ),
        (
            world.thread(),
            patient,
            Box::new(|doc: &mut AutoCommit| {
                let mut message = world.message(patient.user, Side::Patient);
                message.author_name = "Dr Okafor".into();
                record::add(doc, EntryId::mint(), &message).unwrap();
            }),
        ),
    ];
    for (kind, who, edit) in cases {
        let mut doc = world.base(kind);
        let before = doc.get_heads();
        edit(&mut doc);
        let denial = check_change(doc.document(), &before, &kind, who).unwrap_err();
        assert_eq!(denial.rule, Rule::ImpersonatedAuthor);
    }
}
