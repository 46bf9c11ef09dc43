//! C ABI for kvmsandbox. (Filled in by the C library issue.)
