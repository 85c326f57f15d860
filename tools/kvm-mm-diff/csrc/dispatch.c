// SPDX-License-Identifier: GPL-2.0-only
/*
 * The kvm_mm_*() wrappers of kvm_mm_policy.h, out of line. build.rs defines
 * CONFIG_KVM_MM_RUST to 0 or 1 and KVM_MM_DIFF_PREFIX to match.
 */
#include "kvm_mm_diff.h"

#define KVM_MM_DIFF_PASTE2(a, b) a##b
#define KVM_MM_DIFF_PASTE(a, b) KVM_MM_DIFF_PASTE2(a, b)
#define KVM_MM_DIFF_FN(name) KVM_MM_DIFF_PASTE(KVM_MM_DIFF_PREFIX, name)

u32 KVM_MM_DIFF_FN(inval_point)(u32 event, u32 usage, u32 policy,
				bool implicit)
{
	return kvm_mm_inval_point(event, usage, policy, implicit);
}

bool KVM_MM_DIFF_FN(covers_uhva)(u64 start, u64 end, u64 uhva)
{
	return kvm_mm_covers_uhva(start, end, uhva);
}

bool KVM_MM_DIFF_FN(ranges_overlap)(u64 a_start, u64 a_end, u64 b_start,
				    u64 b_end)
{
	return kvm_mm_ranges_overlap(a_start, a_end, b_start, b_end);
}

struct kvm_mm_range KVM_MM_DIFF_FN(clamp_to_slot)(u64 start, u64 end,
						  u64 slot_uaddr,
						  u64 slot_npages,
						  u32 page_shift)
{
	return kvm_mm_clamp_to_slot(start, end, slot_uaddr, slot_npages,
				    page_shift);
}

struct kvm_mm_range KVM_MM_DIFF_FN(hva_range_to_gfn_range)(u64 hva_start,
							   u64 hva_end,
							   u64 slot_uaddr,
							   u64 base_gfn,
							   u32 page_shift)
{
	return kvm_mm_hva_range_to_gfn_range(hva_start, hva_end, slot_uaddr,
					     base_gfn, page_shift);
}

struct kvm_mm_range KVM_MM_DIFF_FN(range_union)(u64 cur_start, u64 cur_end,
						u64 new_start, u64 new_end)
{
	return kvm_mm_range_union(cur_start, cur_end, new_start, new_end);
}
