//! Host-side tests of the module's pure-Rust files, compiled here as they are in the kernel.

#[path = "../../../uapi.rs"]
pub mod uapi;

#[path = "../../../ring.rs"]
pub mod ring;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod ring_tests;

#[cfg(test)]
mod packed_tests;
