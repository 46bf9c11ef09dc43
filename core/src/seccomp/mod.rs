//! Seccomp filters for the VMM threads.
