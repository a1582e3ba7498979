//! The chaos suite: processes killed with SIGKILL in the middle of their work.
//!
//! - [`coordinator`]: the coordinator, hundreds of times, in the middle of writes (no root
//!   needed);
//! - [`agent`]: an agent in the middle of reconciling, and under steady traffic, in network
//!   namespaces (root).
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../support/mod.rs"]
mod support;

mod coordinator;
