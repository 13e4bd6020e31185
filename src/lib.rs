//! utkikk ("lookout"): a monitoring agent for inter-municipal IT companies.
//!
//! Data flows one way:
//!
//! ```text
//! config (YAML) -> inventory -> schedule -> probe (icmp) -> health -> metrics / HTTP API
//!                                                              \-> events -> ledger -> sla -> API, metrics
//! config / API maintenance windows -> ledger (declared, withdrawn) -> sla, live state
//! ```
//!
//! Probes know nothing of states; health knows nothing of HTTP. The binary
//! (`main.rs`) only parses flags, sets up logging and signals, and calls
//! [`agent::Agent::start`] and [`http::serve`].

pub mod agent;
pub mod config;
pub mod health;
pub mod http;
pub mod inventory;
pub mod jobs;
pub mod ledger;
pub mod link;
pub mod linkstats;
pub mod live;
pub mod logging;
pub mod maintenance;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod probe;
pub mod report;
pub mod schedule;
pub mod sla;
pub mod status;
pub mod time;
