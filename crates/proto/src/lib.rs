//! Wire types shared by every segwire component.
//!
//! Everything here is plain data plus validation: REST request and response bodies
//! ([`api`]), the per-node network map ([`netmap`]), the join token string ([`token`]),
//! the CA pin ([`pin`]) and the naming rules ([`names`]). No I/O, no async, so the
//! coordinator, the node agent and the CLI agree on one definition of each.

pub mod access;
pub mod api;
pub mod delta;
pub mod keys;
pub mod names;
pub mod netmap;
pub mod peer;
pub mod pin;
pub mod token;

pub use pin::CaPin;
pub use token::JoinToken;
