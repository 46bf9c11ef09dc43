//! Loading a guest image and describing the machine to it.

pub mod linux;
pub mod micro;
pub mod mptable;
