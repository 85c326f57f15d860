//! Differential tests of the gfn_to_pfn cache invalidation policy.
//!
//! The policy exists twice: as Rust in the `kvm_mm` crate (the kernel's
//! `virt/kvm/kvm_mm_rs.rs`) and as C in `kvm-mm/virt/kvm/kvm_mm_policy.c`.
//! The two must agree on every input. `build.rs` compiles the C file
//! against a userspace shim, and this crate calls both through [`Impl`].
//! The tests in `tests/it` compare them.
//!
//! # Examples
//!
//! ```
//! use kvm_mm_diff::Impl;
//!
//! for imp in Impl::ALL {
//!     // munmap() with kvm.pfncache_inval=split, a host-only cache, and the
//!     // implicit ->invalidate_range() call present: deferrable.
//!     assert_eq!(imp.inval_point(0, 2, 1, true), 1, "{imp:?}");
//!     assert_eq!(imp.clamp_to_slot(0, u64::MAX, 0x1000, 1, 12), kvm_mm::Range::new(0x1000, 0x2000));
//! }
//! ```

use kvm_mm::Range;

/// The bindgen output for `kvm_mm_policy.h` and `csrc/kvm_mm_diff.h`.
///
/// It holds declarations only. Call the functions through [`Impl`].
#[allow(
    missing_docs,
    non_camel_case_types,
    non_upper_case_globals,
    unsafe_code,
    clippy::all,
    clippy::pedantic
)]
pub mod sys {
    include!(concat!(env!("OUT_DIR"), "/kvm_mm_policy.rs"));
}

/// One implementation of the policy API in `kvm_mm_policy.h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Impl {
    /// `kvm_mm::kvm_mm_rs_*()`, called from Rust.
    Rust,
    /// The C reference: `kvm_mm_c_inval_point()` from `kvm_mm_policy.c`,
    /// and for the range math the header's static inline `kvm_mm_c_*()`
    /// helpers (called through the out-of-line copies of the header's
    /// wrappers built with `CONFIG_KVM_MM_RUST=n`, since static inline
    /// functions have no symbol).
    C,
    /// The header's `kvm_mm_*()` wrappers with `CONFIG_KVM_MM_RUST=n`.
    HeaderC,
    /// The header's `kvm_mm_*()` wrappers with `CONFIG_KVM_MM_RUST=y`:
    /// C calling Rust through the prototypes in the header (except
    /// `covers_uhva()` and `ranges_overlap()`, which stay C in both).
    HeaderRust,
}

// The C types of the functions. The Rust definitions and the header's
// prototypes of them must have these types, or this crate does not
// compile: the constants below check that.
type InvalPointFn = unsafe extern "C" fn(u32, u32, u32, bool) -> u32;
type CoversFn = unsafe extern "C" fn(u64, u64, u64) -> bool;
type OverlapFn = unsafe extern "C" fn(u64, u64, u64, u64) -> bool;
type ClampFn = unsafe extern "C" fn(u64, u64, u64, u64, u32) -> sys::kvm_mm_range;
type GfnFn = unsafe extern "C" fn(u64, u64, u64, u64, u32) -> sys::kvm_mm_range;
type UnionFn = unsafe extern "C" fn(u64, u64, u64, u64) -> sys::kvm_mm_range;

const _: [InvalPointFn; 2] = [sys::kvm_mm_rs_inval_point, kvm_mm::kvm_mm_rs_inval_point];
const _: [CoversFn; 2] = [sys::kvm_mm_rs_covers_uhva, kvm_mm::kvm_mm_rs_covers_uhva];
const _: [OverlapFn; 2] = [
    sys::kvm_mm_rs_ranges_overlap,
    kvm_mm::kvm_mm_rs_ranges_overlap,
];
const _: ClampFn = sys::kvm_mm_rs_clamp_to_slot;
const _: GfnFn = sys::kvm_mm_rs_hva_range_to_gfn_range;
const _: UnionFn = sys::kvm_mm_rs_range_union;
// Rust returns its own Range, whose layout the tests compare with
// struct kvm_mm_range.
const _: unsafe extern "C" fn(u64, u64, u64, u64, u32) -> Range = kvm_mm::kvm_mm_rs_clamp_to_slot;
const _: unsafe extern "C" fn(u64, u64, u64, u64, u32) -> Range =
    kvm_mm::kvm_mm_rs_hva_range_to_gfn_range;
const _: unsafe extern "C" fn(u64, u64, u64, u64) -> Range = kvm_mm::kvm_mm_rs_range_union;

// The only unsafe code: the calls into C.
#[allow(unsafe_code)]
impl Impl {
    /// Every implementation, the Rust one first.
    pub const ALL: [Impl; 4] = [Impl::Rust, Impl::C, Impl::HeaderC, Impl::HeaderRust];

    /// `inval_point()`: returns an `enum kvm_mm_inval_point` value.
    pub fn inval_point(self, event: u32, usage: u32, policy: u32, implicit: bool) -> u32 {
        let f: InvalPointFn = match self {
            Impl::Rust => return kvm_mm::kvm_mm_rs_inval_point(event, usage, policy, implicit),
            Impl::C => sys::kvm_mm_c_inval_point,
            Impl::HeaderC => sys::kvm_mm_diff_c_inval_point,
            Impl::HeaderRust => sys::kvm_mm_diff_rs_inval_point,
        };
        // SAFETY: f is one of this policy's C functions, which read only
        // their value arguments and have no preconditions.
        unsafe { f(event, usage, policy, implicit) }
    }

    /// `covers_uhva()`: whether `uhva` is in `[start, end)`.
    pub fn covers_uhva(self, start: u64, end: u64, uhva: u64) -> bool {
        let f: CoversFn = match self {
            Impl::Rust => return kvm_mm::kvm_mm_rs_covers_uhva(start, end, uhva),
            Impl::C | Impl::HeaderC => sys::kvm_mm_diff_c_covers_uhva,
            Impl::HeaderRust => sys::kvm_mm_diff_rs_covers_uhva,
        };
        // SAFETY: f is one of this policy's C functions, which read only
        // their value arguments and have no preconditions.
        unsafe { f(start, end, uhva) }
    }

    /// `ranges_overlap()`: whether two half-open ranges intersect.
    pub fn ranges_overlap(self, a_start: u64, a_end: u64, b_start: u64, b_end: u64) -> bool {
        let f: OverlapFn = match self {
            Impl::Rust => return kvm_mm::kvm_mm_rs_ranges_overlap(a_start, a_end, b_start, b_end),
            Impl::C | Impl::HeaderC => sys::kvm_mm_diff_c_ranges_overlap,
            Impl::HeaderRust => sys::kvm_mm_diff_rs_ranges_overlap,
        };
        // SAFETY: f is one of this policy's C functions, which read only
        // their value arguments and have no preconditions.
        unsafe { f(a_start, a_end, b_start, b_end) }
    }

    /// `clamp_to_slot()`: `[start, end)` intersected with a slot's hvas.
    pub fn clamp_to_slot(
        self,
        start: u64,
        end: u64,
        slot_uaddr: u64,
        slot_npages: u64,
        page_shift: u32,
    ) -> Range {
        let f: ClampFn = match self {
            Impl::Rust => {
                return kvm_mm::kvm_mm_rs_clamp_to_slot(
                    start,
                    end,
                    slot_uaddr,
                    slot_npages,
                    page_shift,
                );
            }
            Impl::C | Impl::HeaderC => sys::kvm_mm_diff_c_clamp_to_slot,
            Impl::HeaderRust => sys::kvm_mm_diff_rs_clamp_to_slot,
        };
        // SAFETY: f is one of this policy's C functions, which read only
        // their value arguments and have no preconditions.
        from_c(unsafe { f(start, end, slot_uaddr, slot_npages, page_shift) })
    }

    /// `hva_range_to_gfn_range()`: the gfns of the pages an hva range
    /// touches.
    pub fn hva_range_to_gfn_range(
        self,
        hva_start: u64,
        hva_end: u64,
        slot_uaddr: u64,
        base_gfn: u64,
        page_shift: u32,
    ) -> Range {
        let f: GfnFn = match self {
            Impl::Rust => {
                return kvm_mm::kvm_mm_rs_hva_range_to_gfn_range(
                    hva_start, hva_end, slot_uaddr, base_gfn, page_shift,
                );
            }
            Impl::C | Impl::HeaderC => sys::kvm_mm_diff_c_hva_range_to_gfn_range,
            Impl::HeaderRust => sys::kvm_mm_diff_rs_hva_range_to_gfn_range,
        };
        // SAFETY: f is one of this policy's C functions, which read only
        // their value arguments and have no preconditions.
        from_c(unsafe { f(hva_start, hva_end, slot_uaddr, base_gfn, page_shift) })
    }

    /// `range_union()`: the smallest range covering both.
    pub fn range_union(self, cur_start: u64, cur_end: u64, new_start: u64, new_end: u64) -> Range {
        let f: UnionFn = match self {
            Impl::Rust => {
                return kvm_mm::kvm_mm_rs_range_union(cur_start, cur_end, new_start, new_end)
            }
            Impl::C | Impl::HeaderC => sys::kvm_mm_diff_c_range_union,
            Impl::HeaderRust => sys::kvm_mm_diff_rs_range_union,
        };
        // SAFETY: f is one of this policy's C functions, which read only
        // their value arguments and have no preconditions.
        from_c(unsafe { f(cur_start, cur_end, new_start, new_end) })
    }
}

fn from_c(range: sys::kvm_mm_range) -> Range {
    Range::new(range.start, range.end)
}
