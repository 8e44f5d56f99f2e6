//! Status codes of record entries, stored as their FHIR code strings so a FHIR
//! export maps them one to one.

use autosurgeon::{Hydrate, HydrateError, Reconcile, Reconciler};

macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $code:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $(#[serde(rename = $code)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub fn code(self) -> &'static str {
                match self {
                    $(Self::$variant => $code),+
                }
            }

            pub fn parse(code: &str) -> Option<Self> {
                match code {
                    $($code => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.code())
            }
        }

        impl Reconcile for $name {
            type Key<'a> = autosurgeon::reconcile::NoKey;
            fn reconcile<R: Reconciler>(&self, reconciler: R) -> Result<(), R::Error> {
                self.code().reconcile(reconciler)
            }
        }

        impl Hydrate for $name {
            fn hydrate_string(s: &str) -> Result<Self, HydrateError> {
                Self::parse(s).ok_or_else(|| HydrateError::unexpected(stringify!($name), "an unknown code".into()))
            }
        }
    };
}

code_enum!(
    /// FHIR `ObservationStatus` / `DiagnosticReportStatus`, as far as the portal writes them.
    ResultStatus { Final => "final", Amended => "amended", EnteredInError => "entered-in-error" }
);
code_enum!(
    /// FHIR `MedicationRequest.status`, as far as the portal writes it.
    PrescriptionStatus {
        Active => "active",
        Stopped => "stopped",
        Completed => "completed",
        EnteredInError => "entered-in-error",
    }
);
code_enum!(
    /// FHIR `AllergyIntolerance.clinicalStatus`, plus entered-in-error from its verification status.
    AllergyStatus { Active => "active", Inactive => "inactive", EnteredInError => "entered-in-error" }
);
code_enum!(
    /// FHIR `AllergyIntolerance.reaction.severity`.
    Severity { Mild => "mild", Moderate => "moderate", Severe => "severe" }
);
code_enum!(
    /// FHIR `Immunization.status`.
    ImmunizationStatus { Completed => "completed", EnteredInError => "entered-in-error" }
);
code_enum!(
    /// FHIR `Appointment.status`, as far as the portal writes it.
    AppointmentStatus {
        Booked => "booked",
        Fulfilled => "fulfilled",
        Cancelled => "cancelled",
        Noshow => "noshow",
        EnteredInError => "entered-in-error",
    }
);
code_enum!(
    /// A patient's refill request, as the clinic answers it.
    RefillStatus { Requested => "requested", Approved => "approved", Denied => "denied", Cancelled => "cancelled" }
);
code_enum!(
    /// Which side of a patient-clinic thread wrote a message.
    Side { Patient => "patient", Clinic => "clinic" }
);
