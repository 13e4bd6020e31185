//! A target's state and its changes.

use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Up,
    Degraded,
    Down,
    Unreachable,
    Maintenance,
    Unmonitored,
}

impl State {
    pub const ALL: [State; 6] = [
        State::Up,
        State::Degraded,
        State::Down,
        State::Unreachable,
        State::Maintenance,
        State::Unmonitored,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Degraded => "degraded",
            State::Down => "down",
            State::Unreachable => "unreachable",
            State::Maintenance => "maintenance",
            State::Unmonitored => "unmonitored",
        }
    }

    /// `down` or `unreachable`: the probes fail.
    pub fn failing(self) -> bool {
        matches!(self, State::Down | State::Unreachable)
    }
}

/// A state change, as published to the transitions stream (and, later,
/// stored in the ledger).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    pub target: String,
    pub from: State,
    pub to: State,
    pub at: DateTime<Utc>,
    pub reason: Option<super::Reason>,
    /// For `unreachable`: the down target this failure is attributed to.
    pub root_cause: Option<String>,
}
