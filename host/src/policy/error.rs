//! Why a policy could not answer.

use crate::decision::DecisionKind;

/// A failure of the policy itself, as opposed to a bad request. Every
/// variant fails the decision closed with a `policy.error` finding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("exceeded its {0} ms deadline")]
    Deadline(u128),
    #[error("exceeded its memory limit of {0} bytes")]
    Memory(usize),
    #[error("overflowed its stack")]
    Stack,
    #[error("trapped: {0}")]
    Trap(String),
    #[error("reported an error: {0}")]
    Guest(String),
    #[error("rejected its parameters: {0}")]
    Configure(String),
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
    #[error("could not be compiled: {0}")]
    Compile(String),
    #[error("does not implement the stagegate:policy world: {0}")]
    Incompatible(String),
}

impl PolicyError {
    /// A short, stable label for metrics and findings.
    /// Every value of [`PolicyError::cause`] (the metrics start each
    /// series at zero).
    pub const CAUSES: [&'static str; 9] = [
        "deadline",
        "memory",
        "stack",
        "trap",
        "guest_error",
        "configure",
        "instantiate",
        "compile",
        "incompatible",
    ];

    pub fn cause(&self) -> &'static str {
        match self {
            PolicyError::Deadline(_) => "deadline",
            PolicyError::Memory(_) => "memory",
            PolicyError::Stack => "stack",
            PolicyError::Trap(_) => "trap",
            PolicyError::Guest(_) => "guest_error",
            PolicyError::Configure(_) => "configure",
            PolicyError::Instantiate(_) => "instantiate",
            PolicyError::Compile(_) => "compile",
            PolicyError::Incompatible(_) => "incompatible",
        }
    }

    /// The fail-closed verdict for a decision this error interrupted.
    pub fn verdict(&self, kind: DecisionKind) -> crate::decision::Verdict {
        crate::decision::Verdict::policy_error(kind, self.cause(), format!("the policy {self}"))
    }
}
