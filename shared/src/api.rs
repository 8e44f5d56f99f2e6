//! The HTTP contract of `/api`: the request and response bodies, and the
//! codes that cross the wire or sit in the database as text, spelled once.
//!
//! The server serializes the bodies with serde. The app, which leaves
//! serde_json out of its bundle, reads and writes them through its own JSON
//! layer with `Decode` and `Encode`, which name each member exactly as serde
//! does (`decode!`/`encode!` spell the Rust field name); a test runs every
//! type through serde_json both ways. Ceremony bodies (`/api/login/*`,
//! `/api/enroll/*`, ...) carry the WebAuthn JSON of the W3C spec and stay
//! outside this contract.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{ClinicId, DocId, EntryId, PatientId, UserId};
use crate::schema::DocKind;
use crate::status::AppointmentStatus;

crate::status::code_enum!(
    /// What someone did, as the audit trail records it and the patient's
    /// access log shows it.
    AuditAction {
        SignIn => "sign_in",
        Enrollment => "enrollment",
        SignOut => "sign_out",
        SignOutEverywhere => "sign_out_everywhere",
        Reauthenticated => "reauthenticated",
        PasskeyAdded => "passkey_added",
        PasskeysReplaced => "passkeys_replaced",
        PasskeyRenamed => "passkey_renamed",
        PasskeyRevoked => "passkey_revoked",
        EnrollmentLinkIssued => "enrollment_link_issued",
        EnrollmentLinksCancelled => "enrollment_links_cancelled",
        UserInvited => "user_invited",
        CaregiverInvited => "caregiver_invited",
        CaregiverLinkIssued => "caregiver_link_issued",
        CaregiverRevoked => "caregiver_revoked",
        ConsentGranted => "consent_granted",
        ConsentRevoked => "consent_revoked",
        DocumentRead => "document_read",
        ChangeAccepted => "change_accepted",
        ChangeRefused => "change_refused",
        RecordRead => "record_read",
        RecordExported => "record_exported",
        CopyRemoved => "copy_removed",
        RecordDownloaded => "record_downloaded",
    }
);

impl AuditAction {
    /// What the access log says the person did, after their name ("Dr.
    /// Okafor (Riverside Family Practice) opened your record").
    pub fn label(self) -> &'static str {
        match self {
            Self::SignIn => "signed in",
            Self::Enrollment => "signed in with a new passkey from a sign-up link",
            Self::SignOut => "signed out",
            Self::SignOutEverywhere => "signed out on every device",
            Self::Reauthenticated => "confirmed it was them with a passkey",
            Self::PasskeyAdded => "added a passkey",
            Self::PasskeysReplaced => "replaced all passkeys with a recovery link",
            Self::PasskeyRenamed => "renamed a passkey",
            Self::PasskeyRevoked => "removed a passkey",
            Self::EnrollmentLinkIssued => "issued a sign-up link",
            Self::EnrollmentLinksCancelled => "cancelled open sign-up links",
            Self::UserInvited => "created the account",
            Self::CaregiverInvited => "invited a caregiver",
            Self::CaregiverLinkIssued => "issued a caregiver a new link",
            Self::CaregiverRevoked => "removed a caregiver",
            Self::ConsentGranted => "gave a clinic access",
            Self::ConsentRevoked => "took a clinic's access away",
            Self::DocumentRead => "opened your record",
            Self::ChangeAccepted => "changed your record",
            Self::ChangeRefused => "sent a change that was refused",
            Self::RecordRead => "read your record through the FHIR API",
            Self::RecordExported => "exported your record",
            Self::CopyRemoved => "removed your record from a device after access ended",
            Self::RecordDownloaded => "downloaded your record to a device",
        }
    }
}

crate::status::code_enum!(
    /// What kind of account someone has.
    UserRole {
        Patient => "patient",
        Caregiver => "caregiver",
        Provider => "provider",
        Admin => "admin",
    }
);

impl UserRole {
    /// Clinic staff: providers and clinic admins.
    pub fn is_staff(self) -> bool {
        matches!(self, Self::Provider | Self::Admin)
    }
}

/// Milliseconds since the Unix epoch, as the API sends times.
pub type Millis = i64;

/// `GET /api/me`: the signed-in user and this session's actor id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Me {
    pub user_id: UserId,
    pub display_name: String,
    pub role: UserRole,
    pub patient_id: Option<PatientId>,
    pub clinics: Vec<ClinicRef>,
    /// What the patient allowed a caregiver (None for everyone else).
    pub caregiver: Option<CaregiverRights>,
    /// 32 hex characters: the Automerge actor id this session writes with.
    pub actor_id: String,
    pub session_id: String,
    /// The passkey this session signed in with: removing it signs this
    /// device out.
    pub passkey_id: Option<Uuid>,
    /// A patient's or caregiver's clinics (those with the patient's
    /// consent) and how to reach them, kept with the copy for offline use.
    #[serde(default)]
    pub care: Vec<ClinicContact>,
    /// For a provider: the providers of their clinics (themselves too), to
    /// assign work items to offline. Empty for everyone else.
    #[serde(default)]
    pub colleagues: Vec<Colleague>,
}

/// A provider of one of the signed-in provider's clinics (`/api/me`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Colleague {
    pub clinic_id: ClinicId,
    pub user_id: UserId,
    pub display_name: String,
}

impl Me {
    pub fn is_staff(&self) -> bool {
        self.role.is_staff()
    }

    /// A caregiver the patient allowed to write messages and requests.
    pub fn may_message(&self) -> bool {
        self.caregiver.as_ref().is_some_and(|c| c.may_message)
    }
}

/// How patients reach a clinic, as its admin says (`Me::care`, shown with
/// every conversation, and the admin's clinic page).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClinicContact {
    pub id: ClinicId,
    pub name: String,
    pub phone: String,
    /// Working days the clinic takes to answer a message.
    pub reply_days: i64,
}

/// `GET /api/clinic/appointments`: an appointment of the admin's clinic
/// still to come (asked for, offered or booked), for the admin's page:
/// admins read no clinical record, so the server reads these for them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClinicAppointment {
    pub patient: PatientId,
    pub patient_name: String,
    pub entry: EntryId,
    pub reason: String,
    pub preferred: Option<String>,
    pub status: AppointmentStatus,
    /// Empty while only asked for.
    pub start: String,
}

/// `POST /api/clinic/appointments`: the admin moves one of them on, as the
/// write policy allows the clinic (confirm, offer a time, decline).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppointmentAnswer {
    pub patient: PatientId,
    pub entry: EntryId,
    pub status: AppointmentStatus,
    pub start: Option<String>,
    pub reason: String,
}

/// `PUT /api/clinic/details`: what a clinic admin says about the clinic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClinicDetails {
    pub phone: String,
    pub reply_days: i64,
}

impl ClinicDetails {
    pub const MAX_PHONE_BYTES: usize = 32;
    pub const MAX_REPLY_DAYS: i64 = 14;

    /// What is wrong with the details, in words for the admin.
    pub fn check(&self) -> Result<(), &'static str> {
        let allowed = |c: char| c.is_ascii_digit() || " +-().".contains(c);
        if self.phone.len() > Self::MAX_PHONE_BYTES || !self.phone.chars().all(allowed) {
            return Err("A phone number has digits, spaces and + - ( ) . only, at most 32.");
        }
        if !(1..=Self::MAX_REPLY_DAYS).contains(&self.reply_days) {
            return Err("The reply time is 1 to 14 working days.");
        }
        Ok(())
    }
}

/// `GET /api/clinic`: a clinic admin's own clinic, its details and people
/// (its providers and admins, and the patients consenting to it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClinicPage {
    pub contact: ClinicContact,
    pub people: Vec<ClinicPerson>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClinicPerson {
    pub user_id: UserId,
    pub display_name: String,
    pub role: UserRole,
    /// Has made a passkey (else their link is still open or expired).
    pub enrolled: bool,
}

/// A clinic by id and name (`/api/me`'s clinics, `GET /api/clinics`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClinicRef {
    pub id: ClinicId,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaregiverRights {
    pub may_read: bool,
    pub may_message: bool,
}

/// One entry of `GET /api/documents`: `{"id", "kind", "patient", "clinic"}`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DocumentInfo {
    pub id: DocId,
    #[serde(flatten)]
    pub kind: DocKind,
}

/// One clinic with access, `GET /api/consents`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Consent {
    pub clinic_id: ClinicId,
    pub clinic_name: String,
}

/// One of the patient's caregivers, `GET /api/caregivers`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Caregiver {
    pub user_id: UserId,
    pub display_name: String,
    /// May message clinics and request refills, besides reading.
    pub may_message: bool,
    /// Has created a passkey with their link.
    pub enrolled: bool,
    pub created_at: Millis,
}

/// `POST /api/caregivers`: a caregiver to invite.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewCaregiver {
    pub display_name: String,
    #[serde(default)]
    pub may_message: bool,
}

/// `POST /api/documents/removed`: documents a device deleted its copy of
/// because the user may no longer read them (at most
/// `RemovedCopies::MAX_DOCS`), so the patient's access log can show that
/// the clinic's devices no longer hold the record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RemovedCopies {
    pub docs: Vec<DocId>,
}

impl RemovedCopies {
    pub const MAX_DOCS: usize = 1000;
}

/// `GET /api/patients?q=...&offset=...`: one patient clinic staff may
/// read, for the patient list (name and birth date as their record says
/// them; empty until written).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PatientRow {
    pub patient: PatientId,
    pub name: String,
    pub birth_date: String,
}

/// `POST /api/patients/search`: words to match (name, birth date) and where
/// the page starts. A body, not a query string: names are patient data and
/// URLs end up in access logs and browser history.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PatientSearch {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub offset: u32,
}

impl PatientSearch {
    /// The longest search text, in bytes.
    pub const MAX_QUERY_BYTES: usize = 200;
    /// The furthest page start.
    pub const MAX_OFFSET: u32 = 1_000_000;
}

/// `POST /api/documents/offline`: the patients a staff device keeps
/// besides the clinic's work of the day (pinned, recently opened); the
/// answer is the documents of both that the user may read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OfflineSet {
    pub patients: Vec<PatientId>,
}

impl OfflineSet {
    /// Patients one request may name.
    pub const MAX_PATIENTS: usize = 200;
}

/// `POST /api/invitations`: a patient or provider an admin adds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewInvitation {
    pub role: UserRole,
    pub display_name: String,
}

/// A one-time enrollment link for someone to create their passkey with
/// (invitations, caregivers, new links).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Invitation {
    pub user_id: UserId,
    pub role: UserRole,
    pub patient_id: Option<PatientId>,
    /// `{public_url}/enroll#<token>`.
    pub link: String,
    pub expires_at: Millis,
    /// Passkeys the person has now: using the link revokes them all and
    /// ends their sessions (a recovery), which they are told.
    pub replaces_passkeys: u64,
}

/// One passkey of the signed-in user, `GET /api/passkeys`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Passkey {
    pub id: Uuid,
    pub name: String,
    pub created_at: Millis,
    pub last_used_at: Option<Millis>,
    /// The passkey whose session added this one (None: an enrollment link).
    pub added_with: Option<Uuid>,
}

/// A passkey's name (`PATCH /api/passkeys/{id}`, adding one).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PasskeyName {
    #[serde(default)]
    pub name: Option<String>,
}

/// One row of `GET /api/audit`: who did what with the patient's record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: Millis,
    pub user_id: Option<UserId>,
    pub user_name: Option<String>,
    /// A staff member's clinic (the first by name), to say who they are.
    pub clinic_name: Option<String>,
    pub role: Option<UserRole>,
    pub action: AuditAction,
    pub doc_id: Option<DocId>,
    pub detail: String,
}

/// An enrollment link for the signed-in user still open, `GET /api/enrollments`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenLink {
    pub created_at: Millis,
    pub expires_at: Millis,
    pub issued_by: Option<String>,
}

/// `POST /api/audit/downloads`: the record was downloaded on a device
/// (from its own copy, maybe offline) at `at`; reported when it next syncs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownloadReport {
    pub at: Millis,
}

/// A patient app the signed-in person let read a record (SMART on FHIR),
/// `GET /api/smart/apps`; `DELETE /api/smart/apps/{id}` removes its access
/// (the account page's "Apps with access").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuthorizedApp {
    pub id: String,
    pub app: String,
    pub patient: PatientId,
    pub scope: String,
    pub granted_at: Millis,
}

/// A parsed JSON value, as the app's JSON layer (or serde_json) holds it.
pub trait JsonValue: Sized {
    /// The member `key`; absent members read as null.
    fn member(&self, key: &str) -> Self;
    fn is_null(&self) -> bool;
    fn text(&self) -> Option<String>;
    fn number(&self) -> Option<f64>;
    fn boolean(&self) -> Option<bool>;
    fn items(&self) -> Option<Vec<Self>>;
}

/// A JSON value to be built (request bodies, and the document list the app
/// keeps on the device).
pub trait JsonBuild: Sized {
    fn text(text: &str) -> Self;
    fn boolean(value: bool) -> Self;
    fn number(value: f64) -> Self;
    fn null() -> Self;
    fn list(items: Vec<Self>) -> Self;
    fn object(members: Vec<(&'static str, Self)>) -> Self;
}

/// Read from the JSON the server sends.
pub trait Decode: Sized {
    fn decode<J: JsonValue>(json: &J) -> Option<Self>;
}

/// Written as the JSON the server reads.
pub trait Encode {
    fn encode<B: JsonBuild>(&self) -> B;
}

/// `Decode` for a struct whose JSON members are its fields, named alike.
macro_rules! decode {
    ($ty:ident { $($field:ident),+ $(,)? }) => {
        impl Decode for $ty {
            fn decode<J: JsonValue>(json: &J) -> Option<Self> {
                Some($ty { $($field: Decode::decode(&json.member(stringify!($field)))?),+ })
            }
        }
    };
}

/// `Encode` for a struct whose JSON members are its fields, named alike.
macro_rules! encode {
    ($ty:ident { $($field:ident),+ $(,)? }) => {
        impl Encode for $ty {
            fn encode<B: JsonBuild>(&self) -> B {
                B::object(vec![$((stringify!($field), self.$field.encode())),+])
            }
        }
    };
}

impl Decode for Me {
    fn decode<J: JsonValue>(json: &J) -> Option<Self> {
        let field = |key| json.member(key);
        Some(Me {
            user_id: Decode::decode(&field("user_id"))?,
            display_name: Decode::decode(&field("display_name"))?,
            role: Decode::decode(&field("role"))?,
            patient_id: Decode::decode(&field("patient_id"))?,
            clinics: Decode::decode(&field("clinics"))?,
            caregiver: Decode::decode(&field("caregiver"))?,
            actor_id: Decode::decode(&field("actor_id"))?,
            // Copies that earlier versions of the app kept on the device
            // have no session id and "" for an unknown passkey: they must
            // still open offline.
            session_id: Decode::decode(&field("session_id")).unwrap_or_default(),
            passkey_id: Decode::decode(&field("passkey_id")).unwrap_or_default(),
            care: Decode::decode(&field("care")).unwrap_or_default(),
            colleagues: Decode::decode(&field("colleagues")).unwrap_or_default(),
        })
    }
}
decode!(ClinicRef { id, name });
decode!(ClinicContact { id, name, phone, reply_days });
decode!(ClinicPage { contact, people });
decode!(ClinicPerson { user_id, display_name, role, enrolled });
encode!(ClinicDetails { phone, reply_days });
decode!(ClinicAppointment { patient, patient_name, entry, reason, preferred, status, start });
encode!(AppointmentAnswer { patient, entry, status, start, reason });
decode!(Colleague { clinic_id, user_id, display_name });
impl Decode for CaregiverRights {
    fn decode<J: JsonValue>(json: &J) -> Option<Self> {
        Some(CaregiverRights {
            // Every caregiver reads; earlier app versions kept no `may_read`.
            may_read: Decode::decode(&json.member("may_read")).unwrap_or(true),
            may_message: Decode::decode(&json.member("may_message"))?,
        })
    }
}
decode!(Consent { clinic_id, clinic_name });
decode!(Caregiver { user_id, display_name, may_message, enrolled, created_at });
decode!(Invitation { user_id, role, patient_id, link, expires_at, replaces_passkeys });
decode!(Passkey { id, name, created_at, last_used_at, added_with });
decode!(AuditEntry { at, user_id, user_name, clinic_name, role, action, doc_id, detail });
decode!(OpenLink { created_at, expires_at, issued_by });
decode!(AuthorizedApp { id, app, patient, scope, granted_at });
encode!(NewCaregiver { display_name, may_message });
encode!(NewInvitation { role, display_name });
encode!(PasskeyName { name });
encode!(RemovedCopies { docs });
encode!(OfflineSet { patients });
impl Encode for PatientSearch {
    fn encode<B: JsonBuild>(&self) -> B {
        B::object(vec![("q", self.q.encode()), ("offset", i64::from(self.offset).encode())])
    }
}
decode!(PatientRow { patient, name, birth_date });
encode!(DownloadReport { at });

impl Decode for DocumentInfo {
    fn decode<J: JsonValue>(json: &J) -> Option<Self> {
        let kind = DocKind::from_parts(
            &json.member("kind").text()?,
            Decode::decode(&json.member("patient"))?,
            Decode::decode(&json.member("clinic"))?,
        )?;
        Some(DocumentInfo { id: Decode::decode(&json.member("id"))?, kind })
    }
}

impl Encode for DocumentInfo {
    fn encode<B: JsonBuild>(&self) -> B {
        B::object(vec![
            ("id", self.id.encode()),
            ("kind", B::text(self.kind.name())),
            ("patient", self.kind.patient().encode()),
            ("clinic", self.kind.clinic().encode()),
        ])
    }
}

impl Decode for String {
    fn decode<J: JsonValue>(json: &J) -> Option<Self> {
        json.text()
    }
}

impl Decode for bool {
    fn decode<J: JsonValue>(json: &J) -> Option<Self> {
        json.boolean()
    }
}

impl Decode for i64 {
    fn decode<J: JsonValue>(json: &J) -> Option<Self> {
        // Times in ms and counts are well inside f64's exact integers.
        json.number().filter(|n| n.fract() == 0.0).map(|n| n as i64)
    }
}

impl Decode for u64 {
    fn decode<J: JsonValue>(json: &J) -> Option<Self> {
        json.number().filter(|n| n.fract() == 0.0 && *n >= 0.0).map(|n| n as u64)
    }
}

impl<T: Decode> Decode for Option<T> {
    fn decode<J: JsonValue>(json: &J) -> Option<Self> {
        if json.is_null() { Some(None) } else { T::decode(json).map(Some) }
    }
}

impl<T: Decode> Decode for Vec<T> {
    fn decode<J: JsonValue>(json: &J) -> Option<Self> {
        json.items()?.iter().map(T::decode).collect()
    }
}

/// Ids and codes travel as their text.
macro_rules! decode_parsed {
    ($($ty:ty),+) => {
        $(impl Decode for $ty {
            fn decode<J: JsonValue>(json: &J) -> Option<Self> {
                json.text()?.parse().ok()
            }
        })+
    };
}
decode_parsed!(UserId, PatientId, ClinicId, DocId, EntryId, Uuid);

macro_rules! encode_displayed {
    ($($ty:ty),+) => {
        $(impl Encode for $ty {
            fn encode<B: JsonBuild>(&self) -> B {
                B::text(&self.to_string())
            }
        })+
    };
}
encode_displayed!(PatientId, ClinicId, DocId, EntryId, AppointmentStatus);

impl Decode for AppointmentStatus {
    fn decode<J: JsonValue>(json: &J) -> Option<Self> {
        Self::parse(&json.text()?)
    }
}

impl Decode for UserRole {
    fn decode<J: JsonValue>(json: &J) -> Option<Self> {
        Self::parse(&json.text()?)
    }
}

impl Decode for AuditAction {
    fn decode<J: JsonValue>(json: &J) -> Option<Self> {
        Self::parse(&json.text()?)
    }
}

impl Encode for String {
    fn encode<B: JsonBuild>(&self) -> B {
        B::text(self)
    }
}

impl Encode for i64 {
    fn encode<B: JsonBuild>(&self) -> B {
        // Times in milliseconds are far below 2^53: exact as a JSON number.
        B::number(*self as f64)
    }
}

impl Encode for bool {
    fn encode<B: JsonBuild>(&self) -> B {
        B::boolean(*self)
    }
}

impl Encode for UserRole {
    fn encode<B: JsonBuild>(&self) -> B {
        B::text(self.code())
    }
}

impl<T: Encode> Encode for Vec<T> {
    fn encode<B: JsonBuild>(&self) -> B {
        B::list(self.iter().map(T::encode).collect())
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encode<B: JsonBuild>(&self) -> B {
        self.as_ref().map_or_else(B::null, T::encode)
    }
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use serde_json::{Map, Value};

    use super::*;

    impl JsonValue for Value {
        fn member(&self, key: &str) -> Self {
            self.get(key).cloned().unwrap_or(Value::Null)
        }
        fn is_null(&self) -> bool {
            Value::is_null(self)
        }
        fn text(&self) -> Option<String> {
            self.as_str().map(str::to_owned)
        }
        fn number(&self) -> Option<f64> {
            self.as_f64()
        }
        fn boolean(&self) -> Option<bool> {
            self.as_bool()
        }
        fn items(&self) -> Option<Vec<Self>> {
            self.as_array().cloned()
        }
    }

    impl JsonBuild for Value {
        fn text(text: &str) -> Self {
            Value::from(text)
        }
        fn boolean(value: bool) -> Self {
            Value::from(value)
        }
        // As `JSON.stringify` writes it: whole numbers without a fraction.
        fn number(value: f64) -> Self {
            if value.fract() == 0.0 { Value::from(value as i64) } else { Value::from(value) }
        }
        fn null() -> Self {
            Value::Null
        }
        fn list(items: Vec<Self>) -> Self {
            Value::Array(items)
        }
        fn object(members: Vec<(&'static str, Self)>) -> Self {
            Value::Object(
                members.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Map<_, _>>(),
            )
        }
    }

    /// What the server sends, the app reads as the same value.
    fn sent<T: Serialize + Decode + PartialEq + std::fmt::Debug>(value: T) {
        let json = serde_json::to_value(&value).unwrap();
        assert_eq!(T::decode(&json).as_ref(), Some(&value), "{json}");
    }

    /// What the app sends, the server reads as the same value.
    fn received<T: Encode + DeserializeOwned + PartialEq + std::fmt::Debug>(value: T) {
        let json: Value = value.encode();
        assert_eq!(serde_json::from_value::<T>(json.clone()).unwrap(), value, "{json}");
    }

    #[test]
    fn the_app_reads_every_response_as_the_server_writes_it() {
        let clinic = ClinicRef { id: ClinicId::mint(), name: "Riverside".into() };
        let contact = ClinicContact {
            id: clinic.id,
            name: "Riverside".into(),
            phone: "+1 555 0100".into(),
            reply_days: 2,
        };
        let me = |role, patient_id, caregiver| Me {
            user_id: UserId::mint(),
            display_name: "Maria Santos".into(),
            role,
            patient_id,
            clinics: vec![clinic.clone()],
            caregiver,
            actor_id: "ab".repeat(16),
            session_id: "s".into(),
            passkey_id: Some(Uuid::now_v7()),
            care: vec![contact.clone()],
            colleagues: vec![Colleague {
                clinic_id: clinic.id,
                user_id: UserId::mint(),
                display_name: "Dr Lee".into(),
            }],
        };
        let patient = PatientId::mint();
        let rights = CaregiverRights { may_read: true, may_message: false };
        for me in [
            me(UserRole::Caregiver, Some(patient), Some(rights)),
            me(UserRole::Provider, None, None),
        ] {
            sent(me);
        }
        sent(clinic.clone());
        for kind in [
            DocKind::PatientRecord { patient },
            DocKind::ClinicalRecord { patient, clinic: clinic.id },
            DocKind::MessageThread { patient, clinic: clinic.id },
        ] {
            sent(DocumentInfo { id: kind.doc_id(), kind });
            // The app keeps its copy of the document list in this shape.
            received(DocumentInfo { id: kind.doc_id(), kind });
        }
        sent(Consent { clinic_id: clinic.id, clinic_name: clinic.name.clone() });
        sent(Caregiver {
            user_id: UserId::mint(),
            display_name: "Ana".into(),
            may_message: true,
            enrolled: false,
            created_at: 1_764_000_000_000,
        });
        sent(Invitation {
            user_id: UserId::mint(),
            role: UserRole::Patient,
            patient_id: Some(patient),
            link: "https://portal.example/enroll#t".into(),
            expires_at: 1_764_000_000_000,
            replaces_passkeys: 2,
        });
        sent(Passkey {
            id: Uuid::now_v7(),
            name: "Phone".into(),
            created_at: 1,
            last_used_at: None,
            added_with: Some(Uuid::now_v7()),
        });
        for action in AuditAction::ALL {
            sent(AuditEntry {
                at: 5,
                user_id: Some(UserId::mint()),
                user_name: None,
                clinic_name: Some("Riverside".into()),
                role: Some(UserRole::Admin),
                action: *action,
                doc_id: Some(DocKind::PatientRecord { patient }.doc_id()),
                detail: String::new(),
            });
        }
        sent(OpenLink { created_at: 1, expires_at: 2, issued_by: Some("Jordan Lee".into()) });
        sent(AuthorizedApp {
            id: "f1".into(),
            app: "Health Diary".into(),
            patient,
            scope: "launch/patient patient/Observation.rs".into(),
            granted_at: 3,
        });
        sent(ClinicAppointment {
            patient,
            patient_name: "Maria Santos".into(),
            entry: EntryId::mint(),
            reason: "Knee pain".into(),
            preferred: Some("Mornings".into()),
            status: AppointmentStatus::Proposed,
            start: String::new(),
        });
        sent(ClinicPage {
            contact,
            people: vec![ClinicPerson {
                user_id: UserId::mint(),
                display_name: "Dr. Lee".into(),
                role: UserRole::Provider,
                enrolled: true,
            }],
        });
    }

    #[test]
    fn the_server_reads_every_request_as_the_app_writes_it() {
        received(NewCaregiver { display_name: "Ana".into(), may_message: true });
        received(NewInvitation { role: UserRole::Provider, display_name: "Dr. Lee".into() });
        received(PasskeyName { name: Some("Laptop".into()) });
        received(PasskeyName { name: None });
        received(RemovedCopies { docs: vec![DocId::mint()] });
        received(DownloadReport { at: 1_764_000_000_123 });
        received(PatientSearch { q: "maria 1961".into(), offset: 50 });
        received(ClinicDetails { phone: "+1 (555) 010-0100".into(), reply_days: 3 });
        received(AppointmentAnswer {
            patient: PatientId::mint(),
            entry: EntryId::mint(),
            status: AppointmentStatus::Booked,
            start: Some("2026-12-10T09:30:00Z".into()),
            reason: String::new(),
        });
    }

    #[test]
    fn clinic_details_are_checked_before_they_are_stored() {
        let details = |phone: &str, reply_days| ClinicDetails { phone: phone.into(), reply_days };
        assert!(details("+1 (555) 010-0100", 2).check().is_ok());
        assert!(details("", 14).check().is_ok());
        assert!(details("call me", 2).check().is_err());
        assert!(details(&"1".repeat(33), 2).check().is_err());
        assert!(details("555", 0).check().is_err());
        assert!(details("555", 15).check().is_err());
    }

    #[test]
    fn a_copy_of_me_kept_by_an_earlier_version_still_reads() {
        let user = UserId::mint();
        let old = serde_json::json!({
            "user_id": user.to_string(), "display_name": "Maria Santos", "role": "patient",
            "patient_id": PatientId::mint().to_string(), "clinics": [],
            "caregiver": {"may_message": false}, "actor_id": "ab", "passkey_id": "",
        });
        let me = Me::decode(&old).unwrap();
        assert_eq!((me.user_id, me.passkey_id, me.session_id.as_str()), (user, None, ""));
        assert!(!me.may_message() && me.caregiver.is_some_and(|c| c.may_read));
    }

    #[test]
    fn a_missing_member_or_a_wrong_type_is_not_read() {
        let mut json =
            serde_json::to_value(ClinicRef { id: ClinicId::mint(), name: "R".into() }).unwrap();
        json["name"] = Value::from(3);
        assert_eq!(ClinicRef::decode(&json), None);
        json.as_object_mut().unwrap().remove("name");
        assert_eq!(ClinicRef::decode(&json), None);
    }
}
