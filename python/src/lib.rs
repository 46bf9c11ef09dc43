//! Python bindings. (Filled in by the Python issue.)
