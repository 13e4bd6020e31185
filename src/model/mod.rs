//! The shared model: types many modules need and none owns — a target's
//! [`State`] and its [`Transition`]s, the typed [`Reason`]s for them, and
//! [`secret::Secret`].
//!
//! A leaf (it uses only [`crate::time`]): putting these types where work
//! is done made the modules that use them a cycle.

pub mod check;
pub mod reason;
pub mod secret;
mod state;

pub use check::CheckProblem;
pub use reason::{EndName, EndStatus, EndUnknown, FailureReason, Reason, SnmpError};
pub use state::{State, Transition};
