//! Host-side tests of the micro guest's hardware-free code. The guest is a
//! `no_main` kernel for x86_64-unknown-none, so its own crate cannot run
//! `cargo test`; this crate compiles the very same source files (by path)
//! for the host.

#[path = "../../src/heap/classes.rs"]
pub mod heap_classes;
