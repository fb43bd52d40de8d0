//! What admission decides about one request: findings (a rule's code, its
//! severity and a message naming the field) and the answer they make.

use super::workload::Malformed;
use crate::records::model::Deployment;

/// How severe a finding is: a `deny` refuses the object, a `warn` is
/// returned to the client as an admission warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Deny,
    Warn,
}

/// One reason in an answer: a rule (`code`) and a message naming the field.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub code: String,
    pub severity: Severity,
    pub message: String,
}

impl Finding {
    pub fn deny(code: &str, message: impl Into<String>) -> Self {
        Finding {
            code: code.into(),
            severity: Severity::Deny,
            message: message.into(),
        }
    }

    pub fn warn(code: &str, message: impl Into<String>) -> Self {
        Finding {
            code: code.into(),
            severity: Severity::Warn,
            message: message.into(),
        }
    }

    /// A field that could not be read: denied, never skipped.
    pub fn malformed(m: &Malformed) -> Self {
        Finding::deny(
            "admission.malformed_object",
            format!(
                "{} {}: stagegate cannot read it, so it cannot admit the object",
                m.path, m.message
            ),
        )
    }
}

/// What was decided about one request.
#[derive(Debug)]
pub struct Answer {
    /// The object is governed: its answer is a decision about a deployment
    /// (or a stagegate analysis template) and is logged.
    pub governed: bool,
    pub deployment: Option<Deployment>,
    pub findings: Vec<Finding>,
}

impl Answer {
    pub fn allowed(&self) -> bool {
        !self.findings.iter().any(|f| f.severity == Severity::Deny)
    }

    pub(super) fn not_governed() -> Self {
        Answer {
            governed: false,
            deployment: None,
            findings: Vec::new(),
        }
    }

    pub(super) fn refused(finding: Finding) -> Self {
        Answer {
            governed: true,
            deployment: None,
            findings: vec![finding],
        }
    }
}
