// SPDX-License-Identifier: GPL-2.0-only

//! Policy for gfn_to_pfn cache (gpc) invalidation by KVM's MMU notifier.
//!
//! For each `invalidate_range_start()` event, [`inval_point()`] decides
//! whether a gfn_to_pfn cache must be invalidated at start or may be left
//! for `->invalidate_range()`. The range helpers ([`covers_uhva()`],
//! [`ranges_overlap()`], [`clamp_to_slot()`], [`hva_range_to_gfn_range()`],
//! [`range_union()`]) do the hva and gfn arithmetic around it.
//!
//! This file is built twice. Cargo builds it as the host crate `kvm_mm`,
//! and the series copies it into `virt/kvm/`, where Kbuild
//! compiles it into kvm.o when `CONFIG_KVM_MM_RUST=y`. Kbuild uses rustc
//! 1.63, `-Dunreachable_pub` and `-Wmissing_docs`. The C reference copy,
//! `virt/kvm/kvm_mm_policy.c`, must agree with it on every input, and
//! `tools/kvm-mm-diff` checks that on the host.
//!
//! The code never panics, because `CONFIG_RUST_OVERFLOW_CHECKS` turns
//! overflow into a kernel panic. Arithmetic uses checked, saturating or
//! wrapping operations. Wrapping is used only where a comment shows that
//! the value cannot wrap. Nothing is indexed.
//!
//! Unknown inputs never defer: an unknown event, policy or usage bit gives
//! [`InvalPoint::AtStart`].
//!
//! # Examples
//!
//! ```
//! use kvm_mm::{inval_point, Event, InvalPoint, Policy, Usage};
//!
//! // With `kvm.pfncache_inval=split`, an munmap() may wait for
//! // ->invalidate_range() while mm still calls it from
//! // invalidate_range_end().
//! let unmap = inval_point(Event::Unmap, Usage::HOST_USES_PFN, Policy::Split, true);
//! assert_eq!(unmap, InvalPoint::Deferrable);
//!
//! // mprotect() must not wait: the pfn stays the same but the
//! // permissions change.
//! let prot = inval_point(Event::ProtectionVma, Usage::HOST_USES_PFN, Policy::Split, true);
//! assert_eq!(prot, InvalPoint::AtStart);
//!
//! // The C ABI takes raw values, and an unknown value never defers.
//! assert_eq!(kvm_mm::kvm_mm_rs_inval_point(42, 2, 1, true), 0);
//! ```

// Kbuild injects `no_std` itself (`-Zcrate-attr=no_std`) and passes
// `--cfg=CONFIG_RUST`. Repeating the attribute there would be an
// unused-attribute warning, and `CONFIG_WERROR` makes warnings errors.
// `Debug` is derived for host builds only: in the kernel nothing prints
// these types, and the derived code would pull in `core::fmt`.
#![cfg_attr(not(CONFIG_RUST), no_std)]

#[cfg(test)]
extern crate std;

/// `enum mmu_notifier_event` as of Linux 6.1.
///
/// `kvm_mm_policy.c` checks these values against the kernel's at build time.
#[repr(u32)]
#[cfg_attr(not(CONFIG_RUST), derive(Debug))]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// `MMU_NOTIFY_UNMAP`: munmap(), or mremap() moving the range.
    Unmap = 0,
    /// `MMU_NOTIFY_CLEAR`: a page table entry is cleared.
    Clear = 1,
    /// `MMU_NOTIFY_PROTECTION_VMA`: protection change for a whole VMA.
    ProtectionVma = 2,
    /// `MMU_NOTIFY_PROTECTION_PAGE`: protection change for some pages.
    ProtectionPage = 3,
    /// `MMU_NOTIFY_SOFT_DIRTY`: soft-dirty tracking is reset.
    SoftDirty = 4,
    /// `MMU_NOTIFY_RELEASE`: the mm is going away.
    Release = 5,
    /// `MMU_NOTIFY_MIGRATE`: pages are migrated.
    Migrate = 6,
    /// `MMU_NOTIFY_EXCLUSIVE`: the device takes exclusive access.
    Exclusive = 7,
}

impl Event {
    /// Every event, in value order.
    pub const ALL: [Event; 8] = [
        Event::Unmap,
        Event::Clear,
        Event::ProtectionVma,
        Event::ProtectionPage,
        Event::SoftDirty,
        Event::Release,
        Event::Migrate,
        Event::Exclusive,
    ];

    /// Converts a raw `enum mmu_notifier_event`, or returns `None` if the
    /// value is unknown.
    pub const fn from_raw(raw: u32) -> Option<Event> {
        match raw {
            0 => Some(Event::Unmap),
            1 => Some(Event::Clear),
            2 => Some(Event::ProtectionVma),
            3 => Some(Event::ProtectionPage),
            4 => Some(Event::SoftDirty),
            5 => Some(Event::Release),
            6 => Some(Event::Migrate),
            7 => Some(Event::Exclusive),
            _ => None,
        }
    }
}

/// The `kvm.pfncache_inval` module parameter.
#[repr(u32)]
#[cfg_attr(not(CONFIG_RUST), derive(Debug))]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// `start`, the default and the upstream behaviour: every cache is
    /// invalidated in `invalidate_range_start()`.
    Start = 0,
    /// `split`: only a pure unmap may wait for `->invalidate_range()`.
    Split = 1,
    /// `range_only`, test-only: the 2021 RFC behaviour, where every known
    /// event waits for `->invalidate_range()`. The review rejected it, and
    /// it exists only so that the selftests can show the bug.
    RangeOnly = 2,
}

impl Policy {
    /// Every policy, in value order.
    pub const ALL: [Policy; 3] = [Policy::Start, Policy::Split, Policy::RangeOnly];

    /// Converts a raw `kvm.pfncache_inval` value, or returns `None` if the
    /// value is unknown.
    pub const fn from_raw(raw: u32) -> Option<Policy> {
        match raw {
            0 => Some(Policy::Start),
            1 => Some(Policy::Split),
            2 => Some(Policy::RangeOnly),
            _ => None,
        }
    }
}

/// Where a cache must be invalidated for one notifier event.
#[repr(u32)]
#[cfg_attr(not(CONFIG_RUST), derive(Debug))]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvalPoint {
    /// `KVM_MM_INVAL_AT_START`: invalidate in `invalidate_range_start()`.
    AtStart = 0,
    /// `KVM_MM_INVAL_DEFERRABLE`: `->invalidate_range()` may do it.
    Deferrable = 1,
}

/// A set of `enum pfn_cache_usage` bits with no unknown bit set.
#[cfg_attr(not(CONFIG_RUST), derive(Debug))]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Usage(u32);

impl Usage {
    /// No bit set.
    pub const NONE: Usage = Usage(0);
    /// `KVM_GUEST_USES_PFN`: the guest uses the pfn, for example through
    /// nested page tables, so the vCPU has to be kicked out of guest mode.
    pub const GUEST_USES_PFN: Usage = Usage(1);
    /// `KVM_HOST_USES_PFN`: the host uses the kernel mapping (`khva`).
    pub const HOST_USES_PFN: Usage = Usage(2);
    /// `KVM_GUEST_AND_HOST_USE_PFN`.
    pub const GUEST_AND_HOST_USE_PFN: Usage = Usage(3);
    /// Every known bit.
    pub const MASK: u32 = 3;

    /// Converts raw `enum pfn_cache_usage` bits, or returns `None` if an
    /// unknown bit is set.
    pub const fn from_bits(bits: u32) -> Option<Usage> {
        if bits & !Usage::MASK == 0 {
            Some(Usage(bits))
        } else {
            None
        }
    }

    /// Returns the raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Returns whether `KVM_GUEST_USES_PFN` is set.
    pub const fn guest_uses_pfn(self) -> bool {
        self.0 & Usage::GUEST_USES_PFN.0 != 0
    }
}

/// Classifies one notifier event for one cache.
///
/// `implicit` is true while mm's `invalidate_range_end()` still calls
/// `->invalidate_range()` (always in 6.1, unless the test-only mm debug
/// knob emulating 6.6's ec8832d007cb is on).
///
/// - [`Policy::Start`] never defers.
/// - [`Policy::Split`] defers only [`Event::Unmap`], only for a cache the
///   guest does not use, and only while the implicit call exists. `CLEAR`
///   hides downgrades (MADV_FREE, KSM write-protect), and mremap()'s
///   `UNMAP` is followed by no call other than the implicit one.
/// - [`Policy::RangeOnly`] defers every event. That is the bug it exists
///   to show.
pub const fn inval_point(event: Event, usage: Usage, policy: Policy, implicit: bool) -> InvalPoint {
    match policy {
        Policy::Start => InvalPoint::AtStart,
        Policy::Split => {
            if matches!(event, Event::Unmap) && !usage.guest_uses_pfn() && implicit {
                InvalPoint::Deferrable
            } else {
                InvalPoint::AtStart
            }
        }
        Policy::RangeOnly => InvalPoint::Deferrable,
    }
}

/// Classifies raw values the way `kvm_mm_c_inval_point()` does.
///
/// An unknown event, usage bit or policy gives [`InvalPoint::AtStart`].
pub const fn inval_point_raw(event: u32, usage: u32, policy: u32, implicit: bool) -> InvalPoint {
    match (
        Event::from_raw(event),
        Usage::from_bits(usage),
        Policy::from_raw(policy),
    ) {
        (Some(event), Some(usage), Some(policy)) => inval_point(event, usage, policy, implicit),
        _ => InvalPoint::AtStart,
    }
}

/// A half-open address range `[start, end)`: hvas or gfns.
///
/// This is `struct kvm_mm_range` in `kvm_mm_policy.h`. A range with
/// `end <= start` is empty, and a helper that fails returns
/// [`Range::EMPTY`].
#[repr(C)]
#[cfg_attr(not(CONFIG_RUST), derive(Debug))]
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Range {
    /// The first address in the range.
    pub start: u64,
    /// The first address after the range.
    pub end: u64,
}

impl Range {
    /// The empty range that the helpers return on failure.
    pub const EMPTY: Range = Range { start: 0, end: 0 };

    /// Returns `[start, end)`.
    pub const fn new(start: u64, end: u64) -> Range {
        Range { start, end }
    }

    /// Returns whether the range is empty or inverted (`end <= start`).
    pub const fn is_empty(self) -> bool {
        self.end <= self.start
    }

    /// Returns `Some(self)` if the range is not empty, `None` otherwise.
    pub const fn non_empty(self) -> Option<Range> {
        if self.is_empty() {
            None
        } else {
            Some(self)
        }
    }
}

/// Returns whether `uhva` is in `[start, end)`.
///
/// An empty or inverted range covers nothing.
pub const fn covers_uhva(range: Range, uhva: u64) -> bool {
    range.start <= uhva && uhva < range.end
}

/// Returns whether two ranges have a non-empty intersection.
///
/// An empty or inverted range overlaps nothing.
pub const fn ranges_overlap(a: Range, b: Range) -> bool {
    !a.is_empty() && !b.is_empty() && a.start < b.end && b.start < a.end
}

/// Returns the hva range `[uaddr, uaddr + (npages << page_shift))` of a
/// memslot.
///
/// Returns `None` if `page_shift >= 64`. An end that does not fit in 64
/// bits saturates to `u64::MAX`. The range then also includes hvas that
/// are past the slot, which can only make invalidation more conservative.
/// KVM never creates such a slot: `__kvm_set_memory_region()` requires
/// `access_ok()`.
pub const fn slot_hva_range(uaddr: u64, npages: u64, page_shift: u32) -> Option<Range> {
    let max_pages = match u64::MAX.checked_shr(page_shift) {
        Some(max_pages) => max_pages,
        None => return None,
    };
    let size = if npages > max_pages {
        u64::MAX
    } else {
        // No bit is shifted out: npages <= u64::MAX >> page_shift, and
        // page_shift < 64.
        npages.wrapping_shl(page_shift)
    };
    Some(Range::new(uaddr, uaddr.saturating_add(size)))
}

/// Intersects `range` with a memslot's hva range.
///
/// The slot's range is [`slot_hva_range()`], so an end that overflows
/// saturates to `u64::MAX`. Returns `None` if the intersection is empty or
/// `page_shift >= 64`.
pub const fn clamp_to_slot(
    range: Range,
    slot_uaddr: u64,
    slot_npages: u64,
    page_shift: u32,
) -> Option<Range> {
    let slot = match slot_hva_range(slot_uaddr, slot_npages, page_shift) {
        Some(slot) => slot,
        None => return None,
    };
    Range::new(max(range.start, slot.start), min(range.end, slot.end)).non_empty()
}

/// Returns the gfns of every page that intersects the hva range `hva`.
///
/// `hva` must be inside a slot that maps `slot_uaddr` to `base_gfn`. The
/// result is `[base_gfn + ((start - uaddr) >> shift),
/// base_gfn + ((end - 1 - uaddr) >> shift) + 1)`. That equals the
/// kernel's `hva_to_gfn_memslot(end + PAGE_SIZE - 1)`, but it does not
/// overflow when `end` is in the last page of the address space.
///
/// Returns `None` if `hva` is empty, `hva.start < slot_uaddr`,
/// `page_shift >= 64` or a gfn does not fit in 64 bits.
pub const fn hva_range_to_gfn_range(
    hva: Range,
    slot_uaddr: u64,
    base_gfn: u64,
    page_shift: u32,
) -> Option<Range> {
    if hva.is_empty() || hva.start < slot_uaddr {
        return None;
    }
    // No subtraction below wraps: slot_uaddr <= hva.start < hva.end.
    let first = match hva.start.wrapping_sub(slot_uaddr).checked_shr(page_shift) {
        Some(first) => first,
        None => return None,
    };
    let last = match hva
        .end
        .wrapping_sub(1)
        .wrapping_sub(slot_uaddr)
        .checked_shr(page_shift)
    {
        Some(last) => last,
        None => return None,
    };
    let start = match base_gfn.checked_add(first) {
        Some(start) => start,
        None => return None,
    };
    // last + 1 cannot overflow (last <= u64::MAX - 1), but the sum can.
    let end = match base_gfn.checked_add(last) {
        Some(end) => end.checked_add(1),
        None => None,
    };
    match end {
        Some(end) => Some(Range::new(start, end)),
        None => None,
    }
}

/// Returns the smallest range that covers both `cur` and `new`.
///
/// An empty `cur` is replaced by `new`, even if `new` is empty too. An
/// empty `new` leaves `cur` unchanged. This tracks the hvas of the
/// invalidations that are in progress.
pub const fn range_union(cur: Range, new: Range) -> Range {
    if cur.is_empty() {
        return new;
    }
    if new.is_empty() {
        return cur;
    }
    Range::new(min(cur.start, new.start), max(cur.end, new.end))
}

// `Ord::min()` and `Ord::max()` are not const.
const fn min(a: u64, b: u64) -> u64 {
    if a < b {
        a
    } else {
        b
    }
}

const fn max(a: u64, b: u64) -> u64 {
    if a > b {
        a
    } else {
        b
    }
}

// The C ABI, declared in kvm_mm_policy.h. `#[no_mangle]` counts as unsafe
// code for the `unsafe_code` lint. These functions have no preconditions:
// they take and return plain values only.

/// C ABI for [`inval_point_raw()`]: returns `enum kvm_mm_inval_point`.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn kvm_mm_rs_inval_point(
    event: u32,
    usage: u32,
    policy: u32,
    implicit: bool,
) -> u32 {
    inval_point_raw(event, usage, policy, implicit) as u32
}

/// C ABI for [`covers_uhva()`] on `[start, end)`.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn kvm_mm_rs_covers_uhva(start: u64, end: u64, uhva: u64) -> bool {
    covers_uhva(Range::new(start, end), uhva)
}

/// C ABI for [`ranges_overlap()`] on `[a_start, a_end)` and
/// `[b_start, b_end)`.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn kvm_mm_rs_ranges_overlap(
    a_start: u64,
    a_end: u64,
    b_start: u64,
    b_end: u64,
) -> bool {
    ranges_overlap(Range::new(a_start, a_end), Range::new(b_start, b_end))
}

/// C ABI for [`clamp_to_slot()`]: returns [`Range::EMPTY`] for `None`.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn kvm_mm_rs_clamp_to_slot(
    start: u64,
    end: u64,
    slot_uaddr: u64,
    slot_npages: u64,
    page_shift: u32,
) -> Range {
    match clamp_to_slot(Range::new(start, end), slot_uaddr, slot_npages, page_shift) {
        Some(range) => range,
        None => Range::EMPTY,
    }
}

/// C ABI for [`hva_range_to_gfn_range()`]: returns [`Range::EMPTY`] for
/// `None`.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn kvm_mm_rs_hva_range_to_gfn_range(
    hva_start: u64,
    hva_end: u64,
    slot_uaddr: u64,
    base_gfn: u64,
    page_shift: u32,
) -> Range {
    match hva_range_to_gfn_range(
        Range::new(hva_start, hva_end),
        slot_uaddr,
        base_gfn,
        page_shift,
    ) {
        Some(range) => range,
        None => Range::EMPTY,
    }
}

/// C ABI for [`range_union()`].
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn kvm_mm_rs_range_union(
    cur_start: u64,
    cur_end: u64,
    new_start: u64,
    new_end: u64,
) -> Range {
    range_union(
        Range::new(cur_start, cur_end),
        Range::new(new_start, new_end),
    )
}

#[cfg(test)]
#[allow(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;
    use std::vec::Vec;

    const PAGE: u64 = 4096;
    const SHIFT: u32 = 12;
    const AT_START: u32 = InvalPoint::AtStart as u32;
    const DEFERRABLE: u32 = InvalPoint::Deferrable as u32;

    /// The table from the design, written independently of inval_point().
    fn expected(event: u32, usage: u32, policy: u32, implicit: bool) -> u32 {
        let known = event <= 7 && usage <= 3;
        match policy {
            1 if known && event == 0 && usage & 1 == 0 && implicit => DEFERRABLE,
            2 if known => DEFERRABLE,
            _ => AT_START,
        }
    }

    #[test]
    fn inval_point_full_table() {
        let mut events: Vec<u32> = (0..=10).collect();
        events.extend([31, 32, 0x8000_0000, u32::MAX]);
        let mut usages: Vec<u32> = (0..=8).collect();
        usages.extend([0x10, 0x8000_0001, u32::MAX]);
        let mut policies: Vec<u32> = (0..=4).collect();
        policies.extend([0x100, u32::MAX]);

        let mut deferrable = 0;
        let mut cases = 0;
        for &event in &events {
            for &usage in &usages {
                for &policy in &policies {
                    for implicit in [false, true] {
                        let want = expected(event, usage, policy, implicit);
                        let got = kvm_mm_rs_inval_point(event, usage, policy, implicit);
                        assert_eq!(
                            got, want,
                            "event {event} usage {usage:#x} policy {policy} implicit {implicit}"
                        );
                        assert_eq!(inval_point_raw(event, usage, policy, implicit) as u32, want);
                        deferrable += usize::from(got == DEFERRABLE);
                        cases += 1;
                    }
                }
            }
        }
        assert_eq!(cases, events.len() * usages.len() * policies.len() * 2);
        // split: UNMAP x {0, HOST} x implicit. range_only: 8 events x 4
        // usages x 2.
        assert_eq!(deferrable, 2 + 64);
    }

    #[test]
    fn inval_point_typed_matches_raw() {
        for event in Event::ALL {
            for bits in 0..=Usage::MASK {
                let usage = Usage::from_bits(bits).unwrap();
                for policy in Policy::ALL {
                    for implicit in [false, true] {
                        assert_eq!(
                            inval_point(event, usage, policy, implicit),
                            inval_point_raw(event as u32, bits, policy as u32, implicit)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn inval_point_split_rules() {
        let split = Policy::Split;
        // The only deferrable cases.
        assert_eq!(
            inval_point(Event::Unmap, Usage::NONE, split, true),
            InvalPoint::Deferrable
        );
        assert_eq!(
            inval_point(Event::Unmap, Usage::HOST_USES_PFN, split, true),
            InvalPoint::Deferrable
        );
        // The guest uses the pfn: kick at start.
        assert_eq!(
            inval_point(Event::Unmap, Usage::GUEST_USES_PFN, split, true),
            InvalPoint::AtStart
        );
        assert_eq!(
            inval_point(Event::Unmap, Usage::GUEST_AND_HOST_USE_PFN, split, true),
            InvalPoint::AtStart
        );
        // No implicit call (6.6, or the debug knob): mremap() would never
        // invalidate.
        assert_eq!(
            inval_point(Event::Unmap, Usage::HOST_USES_PFN, split, false),
            InvalPoint::AtStart
        );
        // CLEAR hides downgrades.
        assert_eq!(
            inval_point(Event::Clear, Usage::HOST_USES_PFN, split, true),
            InvalPoint::AtStart
        );
        for event in Event::ALL {
            assert_eq!(
                inval_point(event, Usage::HOST_USES_PFN, Policy::Start, true),
                InvalPoint::AtStart
            );
            assert_eq!(
                inval_point(event, Usage::GUEST_USES_PFN, Policy::RangeOnly, false),
                InvalPoint::Deferrable
            );
        }
    }

    #[test]
    fn raw_conversions() {
        for (raw, event) in Event::ALL.iter().enumerate() {
            assert_eq!(Event::from_raw(raw as u32), Some(*event));
            assert_eq!(*event as u32, raw as u32);
        }
        assert_eq!(Event::from_raw(8), None);
        assert_eq!(Event::from_raw(u32::MAX), None);
        for (raw, policy) in Policy::ALL.iter().enumerate() {
            assert_eq!(Policy::from_raw(raw as u32), Some(*policy));
        }
        assert_eq!(Policy::from_raw(3), None);
        assert_eq!(Usage::from_bits(3).map(Usage::bits), Some(3));
        assert_eq!(Usage::from_bits(4), None);
        assert_eq!(Usage::from_bits(u32::MAX), None);
        assert!(Usage::GUEST_AND_HOST_USE_PFN.guest_uses_pfn());
        assert!(!Usage::HOST_USES_PFN.guest_uses_pfn());
    }

    #[test]
    fn covers_uhva_edges() {
        let r = Range::new(PAGE, 2 * PAGE);
        assert!(!covers_uhva(r, PAGE - 1));
        assert!(covers_uhva(r, PAGE));
        assert!(covers_uhva(r, 2 * PAGE - 1));
        assert!(!covers_uhva(r, 2 * PAGE));
        // The whole address space, as clear_refs passes it (0..-1).
        assert!(covers_uhva(Range::new(0, u64::MAX), 0));
        assert!(covers_uhva(Range::new(0, u64::MAX), u64::MAX - 1));
        // u64::MAX is never covered: it would need end == 2^64.
        assert!(!covers_uhva(Range::new(0, u64::MAX), u64::MAX));
        // Empty and inverted ranges cover nothing.
        for uhva in [0, 1, PAGE, u64::MAX] {
            assert!(!covers_uhva(Range::new(uhva, uhva), uhva));
            assert!(!covers_uhva(Range::new(u64::MAX, 0), uhva));
            assert!(!covers_uhva(Range::EMPTY, uhva));
        }
    }

    #[test]
    fn ranges_overlap_edges() {
        let a = Range::new(PAGE, 2 * PAGE);
        assert!(ranges_overlap(a, a));
        assert!(!ranges_overlap(a, Range::new(2 * PAGE, 3 * PAGE)));
        assert!(!ranges_overlap(Range::new(0, PAGE), a));
        assert!(ranges_overlap(Range::new(0, PAGE + 1), a));
        assert!(ranges_overlap(Range::new(2 * PAGE - 1, u64::MAX), a));
        assert!(ranges_overlap(Range::new(0, u64::MAX), a));
        assert!(ranges_overlap(
            Range::new(u64::MAX - 1, u64::MAX),
            Range::new(0, u64::MAX)
        ));
        // Empty and inverted ranges overlap nothing, even inside others.
        assert!(!ranges_overlap(Range::new(PAGE + 1, PAGE + 1), a));
        assert!(!ranges_overlap(a, Range::new(PAGE + 1, PAGE + 1)));
        assert!(!ranges_overlap(Range::new(2 * PAGE, PAGE), a));
        assert!(!ranges_overlap(
            Range::new(u64::MAX, 0),
            Range::new(0, u64::MAX)
        ));
        assert!(!ranges_overlap(Range::EMPTY, Range::EMPTY));
    }

    #[test]
    fn slot_hva_range_overflow() {
        assert_eq!(
            slot_hva_range(PAGE, 2, SHIFT),
            Some(Range::new(PAGE, 3 * PAGE))
        );
        assert_eq!(slot_hva_range(PAGE, 0, SHIFT), Some(Range::new(PAGE, PAGE)));
        // The end is exactly 2^64: saturates.
        assert_eq!(
            slot_hva_range(u64::MAX - PAGE + 1, 1, SHIFT),
            Some(Range::new(u64::MAX - PAGE + 1, u64::MAX))
        );
        // npages << shift loses bits: saturates.
        assert_eq!(
            slot_hva_range(0, 1 << 52, SHIFT),
            Some(Range::new(0, u64::MAX))
        );
        assert_eq!(
            slot_hva_range(0, (1 << 52) - 1, SHIFT),
            Some(Range::new(0, u64::MAX - PAGE + 1))
        );
        assert_eq!(
            slot_hva_range(PAGE, u64::MAX, SHIFT),
            Some(Range::new(PAGE, u64::MAX))
        );
        assert_eq!(
            slot_hva_range(0, u64::MAX, 0),
            Some(Range::new(0, u64::MAX))
        );
        assert_eq!(slot_hva_range(0, 1, 63), Some(Range::new(0, 1 << 63)));
        assert_eq!(slot_hva_range(0, 2, 63), Some(Range::new(0, u64::MAX)));
        // A shift that cannot be done.
        assert_eq!(slot_hva_range(0, 1, 64), None);
        assert_eq!(slot_hva_range(0, 1, u32::MAX), None);
    }

    #[test]
    fn clamp_to_slot_edges() {
        let uaddr = 0x7f00_0000_0000;
        let slot_end = uaddr + 16 * PAGE;
        // Inside, partial on either side, and covering the slot.
        assert_eq!(
            clamp_to_slot(Range::new(uaddr + 1, uaddr + 2), uaddr, 16, SHIFT),
            Some(Range::new(uaddr + 1, uaddr + 2))
        );
        assert_eq!(
            clamp_to_slot(Range::new(0, uaddr + PAGE), uaddr, 16, SHIFT),
            Some(Range::new(uaddr, uaddr + PAGE))
        );
        assert_eq!(
            clamp_to_slot(Range::new(slot_end - 1, u64::MAX), uaddr, 16, SHIFT),
            Some(Range::new(slot_end - 1, slot_end))
        );
        assert_eq!(
            clamp_to_slot(Range::new(0, u64::MAX), uaddr, 16, SHIFT),
            Some(Range::new(uaddr, slot_end))
        );
        // End-exclusive on both sides.
        assert_eq!(clamp_to_slot(Range::new(0, uaddr), uaddr, 16, SHIFT), None);
        assert_eq!(
            clamp_to_slot(Range::new(slot_end, u64::MAX), uaddr, 16, SHIFT),
            None
        );
        // Empty inputs and slots.
        assert_eq!(
            clamp_to_slot(Range::new(uaddr, uaddr), uaddr, 16, SHIFT),
            None
        );
        assert_eq!(
            clamp_to_slot(Range::new(slot_end, uaddr), uaddr, 16, SHIFT),
            None
        );
        assert_eq!(
            clamp_to_slot(Range::new(0, u64::MAX), uaddr, 0, SHIFT),
            None
        );
        assert_eq!(clamp_to_slot(Range::new(0, u64::MAX), uaddr, 16, 64), None);
        // A slot whose end overflows reaches u64::MAX.
        assert_eq!(
            clamp_to_slot(Range::new(0, u64::MAX), u64::MAX - PAGE, 2, SHIFT),
            Some(Range::new(u64::MAX - PAGE, u64::MAX))
        );
        assert_eq!(
            clamp_to_slot(Range::new(0, u64::MAX), 0, u64::MAX, SHIFT),
            Some(Range::new(0, u64::MAX))
        );
    }

    #[test]
    fn hva_range_to_gfn_range_edges() {
        let uaddr = 0x7f00_0000_0000;
        let base = 0x100;
        let gfns = |start, end| hva_range_to_gfn_range(Range::new(start, end), uaddr, base, SHIFT);
        // One byte, one page, and partial pages on both ends.
        assert_eq!(gfns(uaddr, uaddr + 1), Some(Range::new(base, base + 1)));
        assert_eq!(gfns(uaddr, uaddr + PAGE), Some(Range::new(base, base + 1)));
        assert_eq!(
            gfns(uaddr + PAGE - 1, uaddr + PAGE + 1),
            Some(Range::new(base, base + 2))
        );
        assert_eq!(
            gfns(uaddr + PAGE, uaddr + 3 * PAGE),
            Some(Range::new(base + 1, base + 3))
        );
        // Empty, inverted, or below the slot.
        assert_eq!(gfns(uaddr, uaddr), None);
        assert_eq!(gfns(uaddr + PAGE, uaddr), None);
        assert_eq!(gfns(uaddr - 1, uaddr + PAGE), None);
        // The last page of the address space: end + PAGE_SIZE - 1 would
        // overflow, the result does not.
        assert_eq!(
            hva_range_to_gfn_range(Range::new(u64::MAX - 1, u64::MAX), 0, 0, SHIFT),
            Some(Range::new(u64::MAX >> SHIFT, (u64::MAX >> SHIFT) + 1))
        );
        assert_eq!(
            hva_range_to_gfn_range(Range::new(0, u64::MAX), 0, 0, 0),
            Some(Range::new(0, u64::MAX))
        );
        // gfns that do not fit in 64 bits.
        assert_eq!(
            hva_range_to_gfn_range(Range::new(0, 1), 0, u64::MAX, SHIFT),
            None
        );
        assert_eq!(
            hva_range_to_gfn_range(Range::new(0, 1), 0, u64::MAX - 1, SHIFT),
            Some(Range::new(u64::MAX - 1, u64::MAX))
        );
        assert_eq!(
            hva_range_to_gfn_range(Range::new(PAGE, PAGE + 1), 0, u64::MAX - 1, SHIFT),
            None
        );
        // Shifts.
        assert_eq!(
            hva_range_to_gfn_range(Range::new(0, u64::MAX), 0, 0, 63),
            Some(Range::new(0, 2))
        );
        assert_eq!(hva_range_to_gfn_range(Range::new(0, 1), 0, 0, 64), None);
    }

    #[test]
    fn gfn_range_matches_kernel_formula() {
        // Where end + PAGE_SIZE - 1 does not overflow, the result is the
        // one of hva_to_gfn_memslot(end + PAGE_SIZE - 1).
        let uaddr = 0x1000_0000;
        let base = 0x4_0000;
        for shift in [0, 12, 21, 30] {
            let size = 1u64 << shift;
            let points = [
                uaddr,
                uaddr + 1,
                uaddr + size - 1,
                uaddr + size,
                uaddr + size + 1,
                uaddr + 5 * size + 3,
            ];
            for &start in &points {
                for &end in &points {
                    let got = hva_range_to_gfn_range(Range::new(start, end), uaddr, base, shift);
                    if start >= end {
                        assert_eq!(got, None);
                        continue;
                    }
                    let want = Range::new(
                        base + ((start - uaddr) >> shift),
                        base + ((end + size - 1 - uaddr) >> shift),
                    );
                    assert_eq!(got, Some(want), "shift {shift} [{start:#x}, {end:#x})");
                }
            }
        }
    }

    #[test]
    fn range_union_edges() {
        let a = Range::new(PAGE, 2 * PAGE);
        let b = Range::new(4 * PAGE, 5 * PAGE);
        assert_eq!(range_union(a, b), Range::new(PAGE, 5 * PAGE));
        assert_eq!(range_union(b, a), Range::new(PAGE, 5 * PAGE));
        assert_eq!(range_union(a, a), a);
        assert_eq!(
            range_union(Range::new(0, u64::MAX), a),
            Range::new(0, u64::MAX)
        );
        // An empty current range is replaced, even by an empty one.
        assert_eq!(range_union(Range::EMPTY, a), a);
        assert_eq!(range_union(Range::new(u64::MAX, 0), a), a);
        assert_eq!(
            range_union(Range::new(7, 3), Range::new(9, 9)),
            Range::new(9, 9)
        );
        // An empty new range changes nothing.
        assert_eq!(range_union(a, Range::EMPTY), a);
        assert_eq!(range_union(a, Range::new(u64::MAX, 0)), a);
    }

    #[test]
    fn c_abi_returns_empty_on_failure() {
        assert_eq!(
            kvm_mm_rs_clamp_to_slot(0, PAGE, 2 * PAGE, 1, SHIFT),
            Range::EMPTY
        );
        assert_eq!(
            kvm_mm_rs_hva_range_to_gfn_range(0, PAGE, PAGE, 0, SHIFT),
            Range::EMPTY
        );
        assert_eq!(
            kvm_mm_rs_clamp_to_slot(0, u64::MAX, PAGE, 1, SHIFT),
            Range::new(PAGE, 2 * PAGE)
        );
        assert_eq!(kvm_mm_rs_range_union(0, 0, 1, 2), Range::new(1, 2));
        assert!(kvm_mm_rs_covers_uhva(0, 1, 0));
        assert!(kvm_mm_rs_ranges_overlap(0, 2, 1, 3));
        assert_eq!(core::mem::size_of::<Range>(), 16);
        assert_eq!(core::mem::align_of::<Range>(), 8);
    }
}
