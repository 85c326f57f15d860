// SPDX-License-Identifier: GPL-2.0-only
/*
 * C implementation of the gfn_to_pfn cache invalidation policy. It is used
 * when CONFIG_KVM_MM_RUST=n and is the reference that kvm_mm_rs.rs is
 * tested against, so the two must agree on every input, including the
 * invalid ones.
 *
 * The arithmetic never wraps silently: sums use check_add_overflow() and
 * shifts check their width first.
 */

#include <linux/build_bug.h>
#include <linux/kvm_types.h>
#include <linux/limits.h>
#include <linux/minmax.h>
#include <linux/mmu_notifier.h>
#include <linux/overflow.h>
#include <linux/types.h>

#include "kvm_mm_policy.h"

/*
 * kvm_mm_rs.rs mirrors these values by hand. The casts keep -Wenum-compare
 * quiet.
 */
static_assert(KVM_MM_EVENT_UNMAP == (u32)MMU_NOTIFY_UNMAP);
static_assert(KVM_MM_EVENT_CLEAR == (u32)MMU_NOTIFY_CLEAR);
static_assert(KVM_MM_EVENT_PROTECTION_VMA == (u32)MMU_NOTIFY_PROTECTION_VMA);
static_assert(KVM_MM_EVENT_PROTECTION_PAGE == (u32)MMU_NOTIFY_PROTECTION_PAGE);
static_assert(KVM_MM_EVENT_SOFT_DIRTY == (u32)MMU_NOTIFY_SOFT_DIRTY);
static_assert(KVM_MM_EVENT_RELEASE == (u32)MMU_NOTIFY_RELEASE);
static_assert(KVM_MM_EVENT_MIGRATE == (u32)MMU_NOTIFY_MIGRATE);
static_assert(KVM_MM_EVENT_EXCLUSIVE == (u32)MMU_NOTIFY_EXCLUSIVE);
static_assert(KVM_MM_GUEST_USES_PFN == (u32)KVM_GUEST_USES_PFN);
static_assert(KVM_MM_HOST_USES_PFN == (u32)KVM_HOST_USES_PFN);
static_assert(KVM_MM_USES_PFN_MASK == (u32)KVM_GUEST_AND_HOST_USE_PFN);
static_assert(sizeof(struct kvm_mm_range) == 2 * sizeof(u64));

static const struct kvm_mm_range kvm_mm_empty_range;

u32 kvm_mm_c_inval_point(u32 event, u32 usage, u32 policy, bool implicit)
{
	/* Never defer what is not known. */
	if (event > KVM_MM_EVENT_EXCLUSIVE || (usage & ~KVM_MM_USES_PFN_MASK))
		return KVM_MM_INVAL_AT_START;

	switch (policy) {
	case KVM_MM_PFNCACHE_INVAL_SPLIT:
		/*
		 * Only a pure unmap may wait for ->invalidate_range(): CLEAR
		 * also covers downgrades of a page that stays mapped
		 * (MADV_FREE, KSM write-protect), and mremap() unmaps with
		 * no call other than the implicit one from
		 * invalidate_range_end(). A cache the guest uses needs a
		 * vCPU kick that waits, which ->invalidate_range() cannot do
		 * under the page table lock.
		 */
		if (event == KVM_MM_EVENT_UNMAP && implicit &&
		    !(usage & KVM_MM_GUEST_USES_PFN))
			return KVM_MM_INVAL_DEFERRABLE;
		return KVM_MM_INVAL_AT_START;
	case KVM_MM_PFNCACHE_INVAL_RANGE_ONLY:
		/* The rejected RFC behaviour: defer everything. */
		return KVM_MM_INVAL_DEFERRABLE;
	case KVM_MM_PFNCACHE_INVAL_START:
	default:
		return KVM_MM_INVAL_AT_START;
	}
}

bool kvm_mm_c_covers_uhva(u64 start, u64 end, u64 uhva)
{
	return start <= uhva && uhva < end;
}

bool kvm_mm_c_ranges_overlap(u64 a_start, u64 a_end, u64 b_start, u64 b_end)
{
	return a_start < a_end && b_start < b_end &&
	       a_start < b_end && b_start < a_end;
}

/*
 * The end of a slot's hvas, saturated to U64_MAX if it does not fit in 64
 * bits: covering too much only makes invalidation more conservative, and
 * KVM never creates such a slot. @page_shift must be below 64.
 */
static u64 kvm_mm_slot_end(u64 uaddr, u64 npages, u32 page_shift)
{
	u64 end;

	if (npages > (U64_MAX >> page_shift))
		return U64_MAX;
	if (check_add_overflow(uaddr, npages << page_shift, &end))
		return U64_MAX;
	return end;
}

struct kvm_mm_range kvm_mm_c_clamp_to_slot(u64 start, u64 end, u64 slot_uaddr,
					   u64 slot_npages, u32 page_shift)
{
	struct kvm_mm_range range;

	if (page_shift >= 64)
		return kvm_mm_empty_range;

	range.start = max(start, slot_uaddr);
	range.end = min(end, kvm_mm_slot_end(slot_uaddr, slot_npages,
					     page_shift));
	if (kvm_mm_range_empty(range))
		return kvm_mm_empty_range;
	return range;
}

/*
 * The end is computed from the last byte, (end - 1 - uaddr) >> shift, plus
 * one. That equals hva_to_gfn_memslot(end + PAGE_SIZE - 1) but does not
 * overflow when @hva_end is in the last page of the address space.
 */
struct kvm_mm_range kvm_mm_c_hva_range_to_gfn_range(u64 hva_start, u64 hva_end,
						    u64 slot_uaddr,
						    u64 base_gfn,
						    u32 page_shift)
{
	struct kvm_mm_range gfns;
	u64 first, last;

	if (page_shift >= 64 || hva_start >= hva_end || hva_start < slot_uaddr)
		return kvm_mm_empty_range;

	/* slot_uaddr <= hva_start < hva_end, so nothing here wraps. */
	first = (hva_start - slot_uaddr) >> page_shift;
	last = (hva_end - 1 - slot_uaddr) >> page_shift;

	/* last <= U64_MAX - 1, so only the sums can overflow. */
	if (check_add_overflow(base_gfn, first, &gfns.start) ||
	    check_add_overflow(base_gfn, last + 1, &gfns.end))
		return kvm_mm_empty_range;
	return gfns;
}

struct kvm_mm_range kvm_mm_c_range_union(u64 cur_start, u64 cur_end,
					 u64 new_start, u64 new_end)
{
	struct kvm_mm_range range;

	if (cur_end <= cur_start) {
		range.start = new_start;
		range.end = new_end;
	} else if (new_end <= new_start) {
		range.start = cur_start;
		range.end = cur_end;
	} else {
		range.start = min(cur_start, new_start);
		range.end = max(cur_end, new_end);
	}
	return range;
}
