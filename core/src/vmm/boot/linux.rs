//! Linux boot protocol.
