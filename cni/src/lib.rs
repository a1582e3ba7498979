//! The parts of `segwire-cni` that take no I/O, as a library: the network config read
//! from stdin, the member name chosen for a container, and the CNI result and error
//! objects. The binary (`main.rs`) runs the verbs on top; `fuzz/` fuzzes the config parser
//! through this library.

pub mod config;
pub mod member;
pub mod result;
