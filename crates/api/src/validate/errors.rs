//! What validation reports: one [`FieldError`] per problem, all of an object's in
//! [`ValidationErrors`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// One problem in an object, at a field path such as `spec.autoscaling.minInstances`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// Where: a dotted path with `[i]` for list items, in the YAML's own field names.
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl FieldError {
    /// A problem at `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Most field errors an answer lists; the rest are counted, not listed (a hostile document can
/// hold tens of thousands of problems, and listing them all costs megabytes).
pub const MAX_FIELD_ERRORS: usize = 100;

/// Every problem found in one object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    /// The first `max` errors, and how many were left out.
    pub fn capped(mut self, max: usize) -> (ValidationErrors, usize) {
        let omitted = self.0.len().saturating_sub(max);
        self.0.truncate(max);
        (self, omitted)
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}
