//! inval_point(): every event x usage x policy x implicit combination.

use std::fmt::Write as _;

use kvm_mm::{Event, InvalPoint, Policy, Usage};
use kvm_mm_diff::Impl;

use crate::support::inval_point_oracle;

const EVENTS: [u32; 14] = [
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    0x100,
    0x8000_0000,
    u32::MAX,
];
const USAGES: [u32; 11] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 0x8000_0002, u32::MAX];
const POLICIES: [u32; 7] = [0, 1, 2, 3, 4, 0x100, u32::MAX];

#[test]
fn every_combination_agrees() {
    let mut cases = 0;
    let mut deferrable = 0;
    for event in EVENTS {
        for usage in USAGES {
            for policy in POLICIES {
                for implicit in [false, true] {
                    let want = inval_point_oracle(event, usage, policy, implicit);
                    for imp in Impl::ALL {
                        assert_eq!(
                            imp.inval_point(event, usage, policy, implicit),
                            want,
                            "{imp:?}: event {event} usage {usage:#x} policy {policy} implicit {implicit}"
                        );
                    }
                    cases += 1;
                    deferrable += u32::from(want == InvalPoint::Deferrable as u32);
                }
            }
        }
    }
    assert_eq!(cases, 14 * 11 * 7 * 2);
    // split: UNMAP with usage 0 or HOST, implicit. range_only: 8 known
    // events x 4 known usages x 2.
    assert_eq!(deferrable, 2 + 8 * 4 * 2);
}

#[test]
fn unknown_values_never_defer() {
    for imp in Impl::ALL {
        for implicit in [false, true] {
            for policy in [1, 2] {
                assert_eq!(
                    imp.inval_point(8, 2, policy, implicit),
                    0,
                    "{imp:?} event 8"
                );
                assert_eq!(
                    imp.inval_point(u32::MAX, 0, policy, implicit),
                    0,
                    "{imp:?} event MAX"
                );
                assert_eq!(
                    imp.inval_point(0, 4, policy, implicit),
                    0,
                    "{imp:?} usage 4"
                );
            }
            assert_eq!(imp.inval_point(0, 2, 3, implicit), 0, "{imp:?} policy 3");
            assert_eq!(
                imp.inval_point(0, 2, u32::MAX, implicit),
                0,
                "{imp:?} policy MAX"
            );
        }
    }
}

#[test]
fn enum_values_match_the_header() {
    use kvm_mm_diff::sys;

    let events = [
        (Event::Unmap, sys::KVM_MM_EVENT_UNMAP),
        (Event::Clear, sys::KVM_MM_EVENT_CLEAR),
        (Event::ProtectionVma, sys::KVM_MM_EVENT_PROTECTION_VMA),
        (Event::ProtectionPage, sys::KVM_MM_EVENT_PROTECTION_PAGE),
        (Event::SoftDirty, sys::KVM_MM_EVENT_SOFT_DIRTY),
        (Event::Release, sys::KVM_MM_EVENT_RELEASE),
        (Event::Migrate, sys::KVM_MM_EVENT_MIGRATE),
        (Event::Exclusive, sys::KVM_MM_EVENT_EXCLUSIVE),
    ];
    assert_eq!(events.len(), Event::ALL.len());
    for (event, c) in events {
        assert_eq!(event as u32, c, "{event:?}");
    }
    let policies = [
        (Policy::Start, sys::KVM_MM_PFNCACHE_INVAL_START),
        (Policy::Split, sys::KVM_MM_PFNCACHE_INVAL_SPLIT),
        (Policy::RangeOnly, sys::KVM_MM_PFNCACHE_INVAL_RANGE_ONLY),
    ];
    assert_eq!(policies.len(), Policy::ALL.len());
    for (policy, c) in policies {
        assert_eq!(policy as u32, c, "{policy:?}");
    }
    assert_eq!(InvalPoint::AtStart as u32, sys::KVM_MM_INVAL_AT_START);
    assert_eq!(InvalPoint::Deferrable as u32, sys::KVM_MM_INVAL_DEFERRABLE);
    assert_eq!(Usage::GUEST_USES_PFN.bits(), sys::KVM_MM_GUEST_USES_PFN);
    assert_eq!(Usage::HOST_USES_PFN.bits(), sys::KVM_MM_HOST_USES_PFN);
    assert_eq!(Usage::MASK, sys::KVM_MM_USES_PFN_MASK);
}

/// The decision table for known values, for review: one line per policy,
/// implicit and usage, listing the events that may be deferred.
#[test]
fn decision_table() {
    const USAGE_NAMES: [&str; 4] = ["none", "guest", "host", "guest+host"];

    let mut table = String::new();
    for policy in Policy::ALL {
        for implicit in [true, false] {
            for (bits, usage_name) in (0..).zip(USAGE_NAMES) {
                let deferred: Vec<String> = Event::ALL
                    .iter()
                    .filter(|event| {
                        let points: Vec<u32> = Impl::ALL
                            .iter()
                            .map(|imp| {
                                imp.inval_point(**event as u32, bits, policy as u32, implicit)
                            })
                            .collect();
                        assert!(
                            points.windows(2).all(|w| w[0] == w[1]),
                            "{event:?}: {points:?}"
                        );
                        points[0] == InvalPoint::Deferrable as u32
                    })
                    .map(|event| format!("{event:?}"))
                    .collect();
                let deferred = if deferred.is_empty() {
                    "-".to_owned()
                } else {
                    deferred.join(" ")
                };
                let implicit = if implicit { "implicit" } else { "no-implicit" };
                writeln!(
                    table,
                    "{:<10} {implicit:<11} {usage_name:<10} {deferred}",
                    format!("{policy:?}")
                )
                .expect("writing to a String cannot fail");
            }
        }
    }
    insta::assert_snapshot!(table);
}
