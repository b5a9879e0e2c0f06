//! What one desktop notification says: decided by the policy (policy.rs, exhaustion.rs),
//! carried by delivery (deliver.rs and the ways it uses), and across the helper's pipe as
//! one JSON line.
use serde::{Deserialize, Serialize};

/// The application name the desktop shows.
pub const APP_NAME: &str = "hupwatch";

/// How insistent the desktop should be (the freedesktop urgency hint: 0, 1, 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    Low,
    Normal,
    Critical,
}

impl Urgency {
    /// The value of the freedesktop `urgency` hint.
    pub fn level(self) -> u8 {
        match self {
            Self::Low => 0,
            Self::Normal => 1,
            Self::Critical => 2,
        }
    }
}

/// One desktop notification: a title line and a few lines of body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub summary: String,
    pub body: String,
    pub urgency: Urgency,
}
