//! struct kvm_mm_range (bindgen) against the #[repr(C)] kvm_mm::Range.

use std::mem::{align_of, offset_of, size_of};

use kvm_mm::Range;
use kvm_mm_diff::sys::kvm_mm_range;

#[test]
fn range_layout_matches_bindgen() {
    assert_eq!(size_of::<Range>(), size_of::<kvm_mm_range>());
    assert_eq!(align_of::<Range>(), align_of::<kvm_mm_range>());
    assert_eq!(offset_of!(Range, start), offset_of!(kvm_mm_range, start));
    assert_eq!(offset_of!(Range, end), offset_of!(kvm_mm_range, end));
    assert_eq!(size_of::<u64>(), size_of::<kvm_mm_diff::sys::u64_>());
    assert_eq!(size_of::<u32>(), size_of::<kvm_mm_diff::sys::u32_>());
}

#[test]
fn empty_range_is_zeroed_struct() {
    assert_eq!(
        Range::EMPTY,
        Range::new(kvm_mm_range::default().start, kvm_mm_range::default().end)
    );
}
