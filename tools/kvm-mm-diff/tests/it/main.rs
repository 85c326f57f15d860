//! Differential tests of the gfn_to_pfn cache invalidation policy.
//!
//! Every implementation in [`kvm_mm_diff::Impl::ALL`] (Rust, the C
//! reference, and the header's wrappers in both configurations) must give
//! the Rust crate's answer on every input. The answers are also checked
//! against oracles written from the design (`support`), so that Rust and C
//! cannot agree on the same mistake.

// Each module is marked `cfg(test)`: the workspace's clippy lints treat
// code outside such modules as non-test code.
#[cfg(test)]
mod classifier;
#[cfg(test)]
mod layout;
#[cfg(test)]
mod ranges;
#[cfg(test)]
mod support;
