// SPDX-License-Identifier: GPL-2.0-only
/*
 * C implementation of the gfn_to_pfn cache invalidation classifier. It is
 * used when CONFIG_KVM_MM_RUST=n and is the reference that kvm_mm_rs.rs is
 * tested against, so the two must agree on every input, including the
 * invalid ones. The range math is static inline in kvm_mm_policy.h.
 */

#include <linux/build_bug.h>
#include <linux/kvm_types.h>
#include <linux/mmu_notifier.h>
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
