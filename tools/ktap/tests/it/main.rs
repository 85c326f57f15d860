//! Integration tests: snapshot the typed result tree of every log in the
//! hand-written corpus (`tests/corpus/`) and in the kernel's own KUnit test
//! logs (fetched by `tests/fetch-kunit-corpus.sh`), and check the public API.

#![allow(clippy::unwrap_used, clippy::tests_outside_test_module)] // Integration tests: a failed unwrap is a failed assertion.
                                                                  // Everything is inside `cfg(test)` modules: the workspace lints treat code
                                                                  // outside them as non-test code (no `unwrap`, no `#[test]`).
#[cfg(test)]
mod api;
#[cfg(test)]
mod corpus;
#[cfg(test)]
mod kunit_json;
