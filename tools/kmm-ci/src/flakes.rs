//! The known environmental flakes: the only reasons a boot whose result
//! differs from its snapshot is booted again.
//!
//! A row whose result differs from the snapshot fails at once, naming the
//! first differing test, unless its console shows one of the signatures in
//! [`KNOWN`]. Then it is booted again, up to [`crate::BOOT_RETRIES`] times
//! and within [`ROW_BOOT_CAP`] of boot time, and the row records every
//! retry with its flake's name; a match on a retry passes the row as
//! FLAKY, in the table, the JSON and the JUnit output alike.

use std::time::Duration;

/// One known flake of the test environment, not of the series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flake {
    /// Short name, as rows report it.
    pub name: &'static str,
    /// A line the console shows when it happened (a substring).
    pub signature: &'static str,
    /// Why it happens.
    pub cause: &'static str,
    /// How it was established.
    pub evidence: &'static str,
}

/// The table of known flakes.
pub const KNOWN: &[Flake] = &[Flake {
    name: "tcg-tsc-race",
    signature: "user requested TSC rate below hardware speed",
    cause: "under QEMU TCG the guest refines its TSC calibration \
            (tsc_refine_calibration_work, about 1 s after boot) after a \
            built-in KVM initialised, so KVM creates every vCPU at a TSC rate \
            below the host's; kvm_clock_test and sometimes xen_shinfo_test \
            fail for the whole boot, at any commit",
    evidence: "2026-11/12: every kept failing kvm_clock_test boot printed the \
               line (12-14 times) and no passing boot did; about one boot in \
               four with KVM built in. KVM as modules loaded after the refined \
               clocksource (ci/configs/kvm-mm-modular.config) removes the race",
}];

/// Most boot time one row may spend, retries included: a retry that
/// would start past it is not made.
pub const ROW_BOOT_CAP: Duration = Duration::from_secs(20 * 60);

/// The first known flake whose signature the console shows.
pub fn find(console: &str) -> Option<&'static Flake> {
    KNOWN.iter().find(|f| console.contains(f.signature))
}

/// The first line a snapshot diff changes, without its `-`/`+` mark: the
/// first differing test (or summary line).
pub fn first_difference(diff: &str) -> Option<String> {
    diff.lines()
        .filter(|l| !l.starts_with("---") && !l.starts_with("+++"))
        .find(|l| l.starts_with('-') || l.starts_with('+'))
        .map(|l| l[1..].trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_tsc_race_only() {
        let log = "[    1.53] user requested TSC rate below hardware speed\n";
        assert_eq!(find(log).map(|f| f.name), Some("tcg-tsc-race"));
        assert_eq!(find("kvm_clock_test: unexpected kvm-clock value\n"), None);
        assert_eq!(find(""), None);
    }

    #[test]
    fn names_the_first_differing_test() {
        let diff = "--- old\n+++ new\n ok: pass\n-  kselftest/selftests: kvm: kvm_clock_test: pass\n+  kselftest/selftests: kvm: kvm_clock_test: fail\n";
        assert_eq!(
            first_difference(diff).as_deref(),
            Some("kselftest/selftests: kvm: kvm_clock_test: pass")
        );
        assert_eq!(first_difference(" same\n"), None);
    }

    #[test]
    fn every_flake_is_documented() {
        for f in KNOWN {
            assert!(!f.name.is_empty() && !f.signature.is_empty());
            assert!(!f.cause.is_empty() && !f.evidence.is_empty());
        }
    }
}
