//! The kit's acknowledged-write recorders and their checks.
pub use patroni_bin::testkit::writer::*;
