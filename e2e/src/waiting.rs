//! Waiting for a condition with a deadline: what a test does instead of sleeping a fixed time
//! and hoping the system got there. The same helper the services' in-process tests use.

pub use mesh_core::testing::wait_until;
