//! The range helpers: exhaustive over edge values, then pseudo-random.

use kvm_mm::Range;
use kvm_mm_diff::Impl;

use crate::support::{
    clamp_oracle, covers_oracle, gfn_oracle, overlap_oracle, union_oracle, XorShift64, EDGES,
    NPAGES, PAGE, PAGE_SHIFT, SHIFTS,
};

/// Number of pseudo-random cases per helper.
const RANDOM_CASES: usize = 100_000;
/// Fixed, so that a failure reproduces; printed with each failure.
const SEED: u64 = 0x6b76_6d2d_6d6d_2d64;

const BASE_GFNS: [u64; 6] = [0, 1, 0x100, 1 << 52, u64::MAX - 1, u64::MAX];

fn check_covers(start: u64, end: u64, uhva: u64) {
    let want = covers_oracle(start, end, uhva);
    for imp in Impl::ALL {
        assert_eq!(
            imp.covers_uhva(start, end, uhva),
            want,
            "{imp:?}: covers_uhva({start:#x}, {end:#x}, {uhva:#x})"
        );
    }
}

fn check_overlap(a_start: u64, a_end: u64, b_start: u64, b_end: u64) {
    let want = overlap_oracle(a_start, a_end, b_start, b_end);
    for imp in Impl::ALL {
        assert_eq!(
            imp.ranges_overlap(a_start, a_end, b_start, b_end),
            want,
            "{imp:?}: ranges_overlap({a_start:#x}, {a_end:#x}, {b_start:#x}, {b_end:#x})"
        );
    }
}

fn check_union(cur_start: u64, cur_end: u64, new_start: u64, new_end: u64) {
    let want = union_oracle(cur_start, cur_end, new_start, new_end);
    for imp in Impl::ALL {
        assert_eq!(
            imp.range_union(cur_start, cur_end, new_start, new_end),
            want,
            "{imp:?}: range_union({cur_start:#x}, {cur_end:#x}, {new_start:#x}, {new_end:#x})"
        );
    }
}

fn check_clamp(start: u64, end: u64, uaddr: u64, npages: u64, shift: u32) -> Range {
    let want = clamp_oracle(start, end, uaddr, npages, shift);
    for imp in Impl::ALL {
        assert_eq!(
            imp.clamp_to_slot(start, end, uaddr, npages, shift),
            want,
            "{imp:?}: clamp_to_slot({start:#x}, {end:#x}, {uaddr:#x}, {npages:#x}, {shift})"
        );
    }
    want
}

fn check_gfn(hva_start: u64, hva_end: u64, uaddr: u64, base_gfn: u64, shift: u32) {
    // The oracle uses the kernel walker's formula,
    // hva_to_gfn_memslot(end + PAGE_SIZE - 1), in 128-bit arithmetic: the
    // helpers must give its result whenever the gfns fit in 64 bits, even
    // where end + PAGE_SIZE - 1 does not.
    let want = gfn_oracle(hva_start, hva_end, uaddr, base_gfn, shift);
    for imp in Impl::ALL {
        assert_eq!(
            imp.hva_range_to_gfn_range(hva_start, hva_end, uaddr, base_gfn, shift),
            want,
            "{imp:?}: hva_range_to_gfn_range({hva_start:#x}, {hva_end:#x}, {uaddr:#x}, {base_gfn:#x}, {shift})"
        );
    }
}

#[test]
fn covers_uhva_edges() {
    for start in EDGES {
        for end in EDGES {
            for uhva in EDGES {
                check_covers(start, end, uhva);
            }
        }
    }
}

#[test]
fn ranges_overlap_edges() {
    for a_start in EDGES {
        for a_end in EDGES {
            for b_start in EDGES {
                for b_end in EDGES {
                    check_overlap(a_start, a_end, b_start, b_end);
                }
            }
        }
    }
}

#[test]
fn range_union_edges() {
    for cur_start in EDGES {
        for cur_end in EDGES {
            for new_start in EDGES {
                for new_end in EDGES {
                    check_union(cur_start, cur_end, new_start, new_end);
                }
            }
        }
    }
}

#[test]
fn clamp_to_slot_edges() {
    let mut non_empty = 0;
    let mut saturated = 0;
    for start in EDGES {
        for end in EDGES {
            for uaddr in EDGES {
                for npages in NPAGES {
                    for shift in SHIFTS {
                        let got = check_clamp(start, end, uaddr, npages, shift);
                        non_empty += usize::from(!got.is_empty());
                        saturated += usize::from(got.end == u64::MAX && end == u64::MAX);
                    }
                }
            }
        }
    }
    // The edges reach both outcomes, and slot ends that overflow.
    assert!(non_empty > 1000, "{non_empty}");
    assert!(saturated > 100, "{saturated}");
}

#[test]
fn hva_range_to_gfn_range_edges() {
    for hva_start in EDGES {
        for hva_end in EDGES {
            for uaddr in EDGES {
                for base_gfn in BASE_GFNS {
                    for shift in SHIFTS {
                        check_gfn(hva_start, hva_end, uaddr, base_gfn, shift);
                    }
                }
            }
        }
    }
}

#[test]
fn last_page_of_the_address_space() {
    // end + PAGE_SIZE - 1 overflows here; the result does not.
    for imp in Impl::ALL {
        assert_eq!(
            imp.hva_range_to_gfn_range(u64::MAX - 1, u64::MAX, 0, 0, PAGE_SHIFT),
            Range::new(u64::MAX >> PAGE_SHIFT, (u64::MAX >> PAGE_SHIFT) + 1),
            "{imp:?}"
        );
        // A slot ending exactly at 2^64 saturates to u64::MAX.
        assert_eq!(
            imp.clamp_to_slot(0, u64::MAX, u64::MAX - PAGE + 1, 1, PAGE_SHIFT),
            Range::new(u64::MAX - PAGE + 1, u64::MAX),
            "{imp:?}"
        );
    }
}

/// A memslot walk as the notifier does it: clamp, then convert, with the
/// result's gfns inside the slot's.
#[test]
fn random_walks_stay_in_the_slot() {
    let mut rng = XorShift64::new(SEED ^ 1);
    let mut walked = 0;
    for _ in 0..RANDOM_CASES {
        let uaddr = rng.addr() & !(PAGE - 1);
        let npages = rng.below(1 << 20) + 1;
        let base_gfn = rng.next_u64() >> 12;
        let (start, end) = (rng.addr(), rng.addr());
        let hva = check_clamp(start, end, uaddr, npages, PAGE_SHIFT);
        if hva.is_empty() {
            continue;
        }
        check_gfn(hva.start, hva.end, uaddr, base_gfn, PAGE_SHIFT);
        let gfns =
            Impl::Rust.hva_range_to_gfn_range(hva.start, hva.end, uaddr, base_gfn, PAGE_SHIFT);
        if let Some(slot_gfn_end) = base_gfn.checked_add(npages) {
            // The slot's hvas may have been saturated at u64::MAX.
            if uaddr.checked_add(npages << PAGE_SHIFT).is_some() {
                assert!(
                    !gfns.is_empty() && gfns.start >= base_gfn && gfns.end <= slot_gfn_end,
                    "seed {SEED:#x}: {gfns:?}"
                );
                walked += 1;
            }
        }
    }
    assert!(walked > RANDOM_CASES / 20, "{walked}");
}

#[test]
fn random_ranges_agree() {
    let mut rng = XorShift64::new(SEED);
    for _ in 0..RANDOM_CASES {
        let (a, b, c, d) = (rng.addr(), rng.addr(), rng.addr(), rng.addr());
        check_covers(a, b, c);
        check_overlap(a, b, c, d);
        check_union(a, b, c, d);
        let (npages, shift) = (rng.npages(), rng.shift());
        check_clamp(a, b, c, npages, shift);
        let base_gfn = match rng.below(3) {
            0 => rng.pick(&BASE_GFNS),
            1 => rng.next_u64() >> 12,
            _ => rng.next_u64(),
        };
        check_gfn(a, b, c, base_gfn, shift);
        // Ranges that start at or above the slot, so that the conversion
        // does not fail early.
        check_gfn(c.max(a), b, c, base_gfn, shift);
    }
}
