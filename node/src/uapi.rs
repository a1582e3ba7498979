//! The WireGuard UAPI on one Unix socket per member, so `wg show` lists segwire's
//! interfaces. The protocol (parsing requests, encoding answers, naming sockets) is the
//! `segwire-uapi` crate, re-exported here; [`server`] moves the bytes.

pub mod server;

pub use segwire_uapi::*;
pub use server::Sockets;

#[cfg(test)]
mod tests;
