//! Contracts shared by the host and the guests: the micro guest's boot-info
//! structure and the agent wire protocol. `no_std` + `alloc` so the micro guest
//! links the very same code the host uses.
#![no_std]

pub mod bootinfo;
