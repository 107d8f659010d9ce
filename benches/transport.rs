//! Transport benchmark (being written).
fn main() {}
