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

/// The table of known flakes, retried for. An entry needs a signature
/// that only the flake prints, its cause and the evidence for both; a
/// flake whose cause can be removed is removed instead ([`REMOVED`]).
pub const KNOWN: &[Flake] = &[
    Flake {
        name: "xen-wallclock-skew",
        signature: "VM time too old",
        cause: "xen_shinfo_test reads CLOCK_REALTIME just before it creates \
            its VM and then asserts that the Xen wall clock KVM writes into \
            shared_info (realtime minus kvmclock) is not earlier. Under TCG, \
            kvmclock (KVM's master clock: a TSC snapshot scaled by tsc_khz) \
            and the timekeeper's CLOCK_REALTIME can disagree by more than \
            the few microseconds between that read and the VM's creation. \
            The message needs a wall clock with a valid version and a \
            plausible time, i.e. written correctly through the shared_info \
            cache; a cache that writes a stale page fails earlier with \
            \"Bad wallclock version\"",
        evidence: "2026-12: once with KVM built in and once with KVM as modules \
               loaded after the final TSC calibration (no TSC race line), \
               the latter at patch 5 of v2, which adds functions nothing \
               calls yet; 0 in the other ~130 boots of that day that ran \
               xen_shinfo_test",
    },
    Flake {
        name: "xen-runstate-preempted",
        signature: "Failed guest assert: rs->time[RUNSTATE_runnable] == 0",
        cause: "xen_shinfo_test sets the vCPU's runstate times (runnable 0) \
            with KVM_XEN_VCPU_SET_ATTR and the guest then asserts that \
            runnable is still 0. If the guest kernel's scheduler preempts the \
            vCPU thread in between (2 emulated CPUs under TCG, kernel threads \
            runnable), kvm_arch_vcpu_put() marks the vCPU preempted and KVM \
            accounts the time until it runs again as runnable, as it must. \
            The assert just before it, state_entry_time >= 0x8000, passed: \
            the set reached the guest's page through the runstate cache, so \
            the cache was not stale",
        evidence: "2026-12-03: once in a .ci/run, at patch 4 of v2 (default \
               config, commit plan), a commit whose boots passed \
               xen_shinfo_test in every earlier .ci/run; the line is upstream \
               6.1's xen_shinfo_test.c:190, unchanged by the series",
    },
];

/// Flakes of the environment that the boot shape removed. Never retried:
/// a result that differs from its snapshot while the console shows one
/// fails like any other, and the failure says that the removed flake is
/// back (the removal broke, which is a bug of kmm or of the config).
pub const REMOVED: &[Flake] = &[
    Flake {
        name: "tcg-tsc-race",
        signature: "user requested TSC rate below hardware speed",
        cause: "under QEMU TCG the guest refines its TSC calibration \
            (tsc_refine_calibration_work, about 1 s after boot); a KVM that \
            initialised before that read the early tsc_khz and creates every \
            vCPU at a TSC rate below the host's; kvm_clock_test and sometimes \
            xen_shinfo_test fail for the whole boot, at any commit. Removed: \
            every boot config builds KVM as modules (ci/configs/kvm-mm.config) \
            and /init loads them once tsc-early has left \
            available_clocksource (kmm-boot's initramfs)",
        evidence: "2026-11/12: every kept failing kvm_clock_test boot printed the \
               line (12-14 times) and no passing boot did; about one boot in \
               four with KVM built in. With the modules loaded after the \
               refinement: ci/bench-boots.sh -n 30, 30 boots at the tip and 30 \
               at the base, 0 such lines and 0 kvm_clock_test failures",
    },
    Flake {
        name: "tcg-nested-npt",
        // pfncache_stress_test's dump of a vCPU stuck in KVM_RUN: a selftest
        // guest runs identity-mapped low, never at a kernel-half rip.
        signature: "vCPU: rip 0xffffffff",
        cause: "QEMU 7.2's TCG emulation of nested SVM with nested paging \
            corrupts the L2 vCPU under pfncache_stress_test's load (mutations \
            of its mm, memslot zaps, TLB-flush IPIs): the vCPU either \
            triple-faults (KVM_EXIT_SHUTDOWN, rip 0xfff0) or re-enters the \
            guest forever with the L1 kernel's rip, rsp and cr3 in its save \
            area and a #PF on that rip pending. Removed: the plans that run \
            the test pass kvm_amd.npt=0 (selftests/plans/pfncache-stress.toml), \
            so L1 KVM runs L2 under shadow paging",
        evidence: "2026-12-03, 400 rounds per boot (20 in CI): with NPT 5 of 28 \
               boots at the tip and 3 of 22 on 6.1.192 with only the test \
               added failed in those two ways (the stuck form printed a \
               kernel-half rip equal to cr2); kvm_amd.npt=0, 0 of 30 at the tip",
    },
];

/// Most boot time one row may spend, retries included: a retry that
/// would start past it is not made.
pub const ROW_BOOT_CAP: Duration = Duration::from_secs(20 * 60);

/// What to do with a boot whose result differs from its snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Boot again: the console shows this known flake.
    Again(&'static Flake),
    /// The console shows this known flake, but the row's boot time is
    /// spent ([`ROW_BOOT_CAP`]): the row fails.
    Capped(&'static Flake),
    /// No known flake on the console: the row fails at once; `removed` is
    /// a removed flake whose signature it shows, if any.
    No {
        /// See [`REMOVED`].
        removed: Option<&'static Flake>,
    },
}

/// The decision for a differing result with `console`, after `boot_time`
/// of the row's boots, against the tables [`KNOWN`] and [`REMOVED`].
pub fn decide(console: &str, boot_time: Duration) -> Retry {
    decide_in(KNOWN, REMOVED, console, boot_time)
}

fn decide_in(
    known: &'static [Flake],
    removed: &'static [Flake],
    console: &str,
    boot_time: Duration,
) -> Retry {
    match find_in(known, console) {
        Some(flake) if boot_time >= ROW_BOOT_CAP => Retry::Capped(flake),
        Some(flake) => Retry::Again(flake),
        None => Retry::No {
            removed: find_in(removed, console),
        },
    }
}

/// The first known flake whose signature the console shows.
pub fn find(console: &str) -> Option<&'static Flake> {
    find_in(KNOWN, console)
}

/// The first removed flake whose signature the console shows.
pub fn find_removed(console: &str) -> Option<&'static Flake> {
    find_in(REMOVED, console)
}

fn find_in(table: &'static [Flake], console: &str) -> Option<&'static Flake> {
    table.iter().find(|f| console.contains(f.signature))
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
    fn the_xen_wallclock_skew_is_known() {
        let log =
            "    #   VM time too old\n    not ok 2 selftests: kvm: xen_shinfo_test # exit=254\n";
        assert_eq!(find(log).map(|f| f.name), Some("xen-wallclock-skew"));
        assert_eq!(find("    #   Bad wallclock version 0\n"), None);
    }

    #[test]
    fn a_preempted_runstate_is_known() {
        let log = "    #   Failed guest assert: rs->time[RUNSTATE_runnable] == 0 at x86_64/xen_shinfo_test.c:190\n";
        assert_eq!(find(log).map(|f| f.name), Some("xen-runstate-preempted"));
        let other = "    #   Failed guest assert: rs->time[RUNSTATE_runnable] >= MIN_STEAL_TIME\n";
        assert_eq!(find(other), None);
    }

    #[test]
    fn the_tsc_race_is_removed_not_retried() {
        let log = "[    1.53] user requested TSC rate below hardware speed\n";
        assert_eq!(find(log), None);
        assert_eq!(find_removed(log).map(|f| f.name), Some("tcg-tsc-race"));
        let clock = "kvm_clock_test: unexpected kvm-clock value\n";
        assert_eq!(find_removed(clock), None);
        assert_eq!(find_removed(""), None);
    }

    #[test]
    fn the_nested_npt_corruption_is_removed_not_retried() {
        let log = "    # # vCPU: rip 0xffffffffa007e31c rsp 0xffa00000001e3cc0 rflags 0x10246\n";
        assert_eq!(find(log), None);
        assert_eq!(find_removed(log).map(|f| f.name), Some("tcg-nested-npt"));
        let guest = "    # # vCPU: rip 0x401a2c rsp 0x7ffff000 rflags 0x2\n";
        assert_eq!(find_removed(guest), None);
    }

    /// A flake for the tests of the retry decision, independent of
    /// [`KNOWN`].
    const TEST_KNOWN: &[Flake] = &[Flake {
        name: "test-flake",
        signature: "TEST FLAKE SIGNATURE",
        cause: "a test",
        evidence: "none",
    }];

    #[test]
    fn a_difference_without_a_known_signature_is_never_retried() {
        // A selftest that fails one boot in two fails the row the first
        // time it fails: nothing on its console makes it a known flake.
        let failing = "# selftests: kvm: kvm_clock_test\nnot ok 4 selftests: kvm: kvm_clock_test # exit=254\n";
        assert_eq!(decide(failing, Duration::ZERO), Retry::No { removed: None });
        let raced = "[ 1.5] user requested TSC rate below hardware speed\n";
        assert!(matches!(
            decide(raced, Duration::ZERO),
            Retry::No { removed: Some(f) } if f.name == "tcg-tsc-race"
        ));
    }

    #[test]
    fn a_known_signature_is_retried_within_the_cap() {
        let log = "x\nTEST FLAKE SIGNATURE\n";
        assert!(matches!(
            decide_in(TEST_KNOWN, REMOVED, log, Duration::from_secs(60)),
            Retry::Again(f) if f.name == "test-flake"
        ));
        assert!(matches!(
            decide_in(TEST_KNOWN, REMOVED, log, ROW_BOOT_CAP),
            Retry::Capped(f) if f.name == "test-flake"
        ));
        assert_eq!(
            decide_in(TEST_KNOWN, REMOVED, "x\n", Duration::ZERO),
            Retry::No { removed: None }
        );
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
        for f in KNOWN.iter().chain(REMOVED) {
            assert!(!f.name.is_empty() && !f.signature.is_empty());
            assert!(!f.cause.is_empty() && !f.evidence.is_empty());
        }
    }
}
