//! Status codes of record entries, stored as their FHIR code strings so a FHIR
//! export maps them one to one.

/// An enum stored as a fixed set of code strings, with `code`, `parse`,
/// `ALL`, `Display`, and autosurgeon's `Reconcile`/`Hydrate` as the code.
macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $code:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $(#[serde(rename = $code)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub const fn code(self) -> &'static str {
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

        impl autosurgeon::Reconcile for $name {
            type Key<'a> = autosurgeon::reconcile::NoKey;
            fn reconcile<R: autosurgeon::Reconciler>(&self, reconciler: R) -> Result<(), R::Error> {
                self.code().reconcile(reconciler)
            }
        }

        impl autosurgeon::Hydrate for $name {
            fn hydrate_string(s: &str) -> Result<Self, autosurgeon::HydrateError> {
                Self::parse(s).ok_or_else(|| autosurgeon::HydrateError::unexpected(stringify!($name), "an unknown code".into()))
            }
        }
    };
}
pub(crate) use code_enum;

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
    /// FHIR `Appointment.status`, as far as the portal writes it: a
    /// patient's request is `proposed`, a time the clinic offers `pending`.
    AppointmentStatus {
        Booked => "booked",
        Proposed => "proposed",
        Pending => "pending",
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
    /// FHIR `Task.status`, as far as the clinic's work queue uses it.
    TaskStatus { Requested => "requested", InProgress => "in-progress", Completed => "completed" }
);
code_enum!(
    /// Which side of a patient-clinic thread wrote a message.
    Side { Patient => "patient", Clinic => "clinic" }
);

// Which status changes each kind of entry allows. Entered-in-error is final
// for every kind: a correction is a new entry, never a revived one.

impl ResultStatus {
    /// A recorded result (or panel) only goes to entered-in-error; an
    /// amendment is a new entry that `replaces` it.
    pub fn may_become(self, to: Self) -> bool {
        self == to || (self != Self::EnteredInError && to == Self::EnteredInError)
    }
}

impl ImmunizationStatus {
    pub fn may_become(self, to: Self) -> bool {
        self == to || (self != Self::EnteredInError && to == Self::EnteredInError)
    }
}

impl PrescriptionStatus {
    /// Active until stopped or completed; either can be entered-in-error.
    pub fn may_become(self, to: Self) -> bool {
        use PrescriptionStatus::*;
        self == to
            || matches!((self, to), (Active, Stopped | Completed))
            || (self != EnteredInError && to == EnteredInError)
    }

    /// Whether refills can still be asked for and counted.
    pub fn is_active(self) -> bool {
        self == Self::Active
    }
}

impl AllergyStatus {
    /// An allergy can be made inactive and active again.
    pub fn may_become(self, to: Self) -> bool {
        use AllergyStatus::*;
        self == to
            || matches!((self, to), (Active, Inactive) | (Inactive, Active))
            || (self != EnteredInError && to == EnteredInError)
    }
}

impl AppointmentStatus {
    /// A patient side's request (`proposed`) is confirmed (`booked`),
    /// offered a time (`pending`) or declined (`cancelled`) by the clinic;
    /// the patient side takes an offered time (`booked`), asks for another
    /// (`proposed` again) or cancels, at any point before the visit. A
    /// booked appointment is fulfilled or missed once, by the clinic; only
    /// the clinic marks one entered-in-error.
    pub fn may_become(self, to: Self, by: Side) -> bool {
        use AppointmentStatus::*;
        if self == to {
            return true;
        }
        match by {
            Side::Clinic => {
                matches!(
                    (self, to),
                    (Proposed, Pending | Booked | Cancelled)
                        | (Pending, Booked | Cancelled)
                        | (Booked, Fulfilled | Cancelled | Noshow)
                ) || (self != EnteredInError && to == EnteredInError)
            }
            Side::Patient => {
                matches!(
                    (self, to),
                    (Proposed | Pending | Booked, Cancelled) | (Pending, Booked | Proposed)
                )
            }
        }
    }

    /// Whether this change gives the appointment its time: the clinic
    /// confirming a request or offering a time. `start` is written only then.
    pub fn sets_time(self, to: Self) -> bool {
        self == Self::Proposed && matches!(to, Self::Pending | Self::Booked)
    }

    /// Still to happen (asked for, offered or booked).
    pub fn is_open(self) -> bool {
        matches!(self, Self::Proposed | Self::Pending | Self::Booked)
    }
}

impl TaskStatus {
    /// Work goes forward only: requested, in progress, completed. A handled
    /// item is never reopened; new work on it is a new task.
    pub fn may_become(self, to: Self) -> bool {
        use TaskStatus::*;
        self == to
            || matches!((self, to), (Requested, InProgress | Completed) | (InProgress, Completed))
    }
}

impl RefillStatus {
    /// A request is answered once: approved or denied by the clinic, or
    /// withdrawn by the patient side, and only while it is still requested.
    pub fn may_become(self, to: Self, by: Side) -> bool {
        use RefillStatus::*;
        self == Requested
            && match by {
                Side::Clinic => matches!(to, Approved | Denied),
                Side::Patient => to == Cancelled,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entered_in_error_is_final_and_reachable_from_every_other_status() {
        fn check<T: Copy + PartialEq + std::fmt::Debug>(
            all: &[T],
            eie: T,
            may_become: impl Fn(T, T) -> bool,
        ) {
            for &from in all {
                assert!(may_become(from, from), "{from:?} stays");
                if from == eie {
                    assert!(all.iter().all(|&to| to == eie || !may_become(eie, to)));
                } else {
                    assert!(may_become(from, eie), "{from:?} -> entered-in-error");
                }
            }
        }
        check(ResultStatus::ALL, ResultStatus::EnteredInError, ResultStatus::may_become);
        check(
            PrescriptionStatus::ALL,
            PrescriptionStatus::EnteredInError,
            PrescriptionStatus::may_become,
        );
        check(AllergyStatus::ALL, AllergyStatus::EnteredInError, AllergyStatus::may_become);
        check(
            ImmunizationStatus::ALL,
            ImmunizationStatus::EnteredInError,
            ImmunizationStatus::may_become,
        );
        check(AppointmentStatus::ALL, AppointmentStatus::EnteredInError, |a, b| {
            a.may_become(b, Side::Clinic)
        });
    }

    #[test]
    fn only_the_listed_transitions_are_allowed() {
        use PrescriptionStatus as P;
        assert!(P::Active.may_become(P::Stopped) && P::Active.may_become(P::Completed));
        assert!(!P::Stopped.may_become(P::Active) && !P::Completed.may_become(P::Stopped));
        assert!(!ResultStatus::Final.may_become(ResultStatus::Amended));
        assert!(AllergyStatus::Inactive.may_become(AllergyStatus::Active));
        use AppointmentStatus as A;
        assert!(!A::Cancelled.may_become(A::Booked, Side::Clinic));
        assert!(A::Proposed.may_become(A::Pending, Side::Clinic));
        assert!(!A::Proposed.may_become(A::Booked, Side::Patient), "a patient never books alone");
        assert!(A::Pending.may_become(A::Booked, Side::Patient));
        assert!(A::Pending.may_become(A::Proposed, Side::Patient));
        assert!(A::Booked.may_become(A::Cancelled, Side::Patient));
        assert!(!A::Booked.may_become(A::Fulfilled, Side::Patient));
        assert!(!A::Booked.may_become(A::EnteredInError, Side::Patient));
        assert!(!A::Cancelled.may_become(A::Proposed, Side::Patient));
        assert!(A::Proposed.sets_time(A::Booked) && !A::Pending.sets_time(A::Booked));
        use RefillStatus as R;
        assert!(R::Requested.may_become(R::Denied, Side::Clinic));
        assert!(!R::Requested.may_become(R::Cancelled, Side::Clinic));
        assert!(R::Requested.may_become(R::Cancelled, Side::Patient));
        assert!(!R::Requested.may_become(R::Approved, Side::Patient));
        assert!(!R::Denied.may_become(R::Approved, Side::Clinic));
        use TaskStatus as T;
        assert!(T::Requested.may_become(T::Completed) && T::InProgress.may_become(T::Completed));
        assert!(!T::Completed.may_become(T::Requested) && !T::Completed.may_become(T::InProgress));
        assert!(!T::InProgress.may_become(T::Requested));
    }
}
