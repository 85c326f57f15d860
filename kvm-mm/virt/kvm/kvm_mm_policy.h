/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Policy for gfn_to_pfn cache invalidation by the MMU notifier: for each
 * event, whether a cache must be invalidated in invalidate_range_start()
 * or may be left to ->invalidate_range(), and the hva/gfn range math
 * around it.
 *
 * The range math is __always_inline C: the hva-range walker in kvm_mm.h,
 * which every architecture with MMU notifiers builds, runs it for every
 * memslot that an invalidation hits, and the gfn_to_pfn cache walk for
 * every cache; plain inline is not enough under -Os, where the compiler
 * makes out-of-line copies. The classifier, kvm_mm_inval_point(), runs only
 * for the non-default policies and is out of line.
 *
 * Everything here also exists in Rust, kvm_mm_rs_*() in kvm_mm_rs.rs
 * (CONFIG_KVM_MM_RUST=y): there the classifier and the clamp, gfn and union
 * helpers call it, and the kvm_mm KUnit suite checks every Rust function
 * against the C one. The C classifier, kvm_mm_c_inval_point() in
 * kvm_mm_policy.c, is the reference.
 *
 * Ranges are half-open, [start, end). A range with end <= start is empty.
 * The helpers that return a struct kvm_mm_range return { 0, 0 } when they
 * fail.
 */

#ifndef __KVM_MM_POLICY_H__
#define __KVM_MM_POLICY_H__

#include <linux/limits.h>
#include <linux/minmax.h>
#include <linux/overflow.h>
#include <linux/types.h>

/* enum mmu_notifier_event, checked against it in kvm_mm_policy.c. */
enum kvm_mm_event {
	KVM_MM_EVENT_UNMAP = 0,
	KVM_MM_EVENT_CLEAR = 1,
	KVM_MM_EVENT_PROTECTION_VMA = 2,
	KVM_MM_EVENT_PROTECTION_PAGE = 3,
	KVM_MM_EVENT_SOFT_DIRTY = 4,
	KVM_MM_EVENT_RELEASE = 5,
	KVM_MM_EVENT_MIGRATE = 6,
	KVM_MM_EVENT_EXCLUSIVE = 7,
};

/* enum pfn_cache_usage, checked against it in kvm_mm_policy.c. */
enum kvm_mm_pfn_usage {
	KVM_MM_GUEST_USES_PFN = 1 << 0,
	KVM_MM_HOST_USES_PFN = 1 << 1,
	KVM_MM_USES_PFN_MASK = KVM_MM_GUEST_USES_PFN | KVM_MM_HOST_USES_PFN,
};

/*
 * The kvm.pfncache_inval module parameter. RANGE_ONLY is the 2021 RFC
 * behaviour, which defers every event; it is kept only so that the
 * selftests can show why the review rejected it.
 */
enum kvm_mm_pfncache_policy {
	KVM_MM_PFNCACHE_INVAL_START = 0,
	KVM_MM_PFNCACHE_INVAL_SPLIT = 1,
	KVM_MM_PFNCACHE_INVAL_RANGE_ONLY = 2,
};

enum kvm_mm_inval_point {
	KVM_MM_INVAL_AT_START = 0,
	KVM_MM_INVAL_DEFERRABLE = 1,
};

/* Must match the #[repr(C)] struct Range in kvm_mm_rs.rs. */
struct kvm_mm_range {
	u64 start;
	u64 end;
};

/*
 * The inval_point functions return an enum kvm_mm_inval_point as a u32,
 * the type that the Rust side returns.
 */
u32 kvm_mm_c_inval_point(u32 event, u32 usage, u32 policy, bool implicit);

u32 kvm_mm_rs_inval_point(u32 event, u32 usage, u32 policy, bool implicit);
bool kvm_mm_rs_covers_uhva(u64 start, u64 end, u64 uhva);
bool kvm_mm_rs_ranges_overlap(u64 a_start, u64 a_end, u64 b_start, u64 b_end);
struct kvm_mm_range kvm_mm_rs_clamp_to_slot(u64 start, u64 end, u64 slot_uaddr,
					    u64 slot_npages, u32 page_shift);
struct kvm_mm_range kvm_mm_rs_hva_range_to_gfn_range(u64 hva_start,
						     u64 hva_end,
						     u64 slot_uaddr,
						     u64 base_gfn,
						     u32 page_shift);
struct kvm_mm_range kvm_mm_rs_range_union(u64 cur_start, u64 cur_end,
					  u64 new_start, u64 new_end);

static __always_inline bool kvm_mm_range_empty(struct kvm_mm_range range)
{
	return range.end <= range.start;
}

static __always_inline bool kvm_mm_c_covers_uhva(u64 start, u64 end, u64 uhva)
{
	return start <= uhva && uhva < end;
}

static __always_inline bool kvm_mm_c_ranges_overlap(u64 a_start, u64 a_end,
						    u64 b_start, u64 b_end)
{
	return a_start < a_end && b_start < b_end &&
	       a_start < b_end && b_start < a_end;
}

/*
 * The end of a slot's hvas, saturated to U64_MAX if it does not fit in 64
 * bits: covering too much only makes invalidation more conservative, and
 * KVM never creates such a slot. @page_shift must be below 64.
 */
static __always_inline u64 kvm_mm_c_slot_end(u64 uaddr, u64 npages,
					     u32 page_shift)
{
	u64 end;

	if (npages > (U64_MAX >> page_shift))
		return U64_MAX;
	if (check_add_overflow(uaddr, npages << page_shift, &end))
		return U64_MAX;
	return end;
}

static __always_inline struct kvm_mm_range
kvm_mm_c_clamp_to_slot(u64 start, u64 end, u64 slot_uaddr, u64 slot_npages,
		       u32 page_shift)
{
	struct kvm_mm_range range = { 0, 0 };

	if (page_shift >= 64)
		return range;

	range.start = max(start, slot_uaddr);
	range.end = min(end, kvm_mm_c_slot_end(slot_uaddr, slot_npages,
					       page_shift));
	if (kvm_mm_range_empty(range)) {
		range.start = 0;
		range.end = 0;
	}
	return range;
}

/*
 * The end is computed from the last byte, (end - 1 - uaddr) >> shift, plus
 * one. That equals hva_to_gfn_memslot(end + PAGE_SIZE - 1) but does not
 * overflow when @hva_end is in the last page of the address space.
 */
static __always_inline struct kvm_mm_range
kvm_mm_c_hva_range_to_gfn_range(u64 hva_start, u64 hva_end, u64 slot_uaddr,
				u64 base_gfn, u32 page_shift)
{
	struct kvm_mm_range gfns = { 0, 0 };
	u64 first, last;

	if (page_shift >= 64 || hva_start >= hva_end || hva_start < slot_uaddr)
		return gfns;

	/* slot_uaddr <= hva_start < hva_end, so nothing here wraps. */
	first = (hva_start - slot_uaddr) >> page_shift;
	last = (hva_end - 1 - slot_uaddr) >> page_shift;

	/* last <= U64_MAX - 1, so only the sums can overflow. */
	if (check_add_overflow(base_gfn, first, &gfns.start) ||
	    check_add_overflow(base_gfn, last + 1, &gfns.end)) {
		gfns.start = 0;
		gfns.end = 0;
	}
	return gfns;
}

static __always_inline struct kvm_mm_range
kvm_mm_c_range_union(u64 cur_start, u64 cur_end, u64 new_start, u64 new_end)
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

/*
 * Classify one notifier event for one cache. @implicit is true while mm's
 * invalidate_range_end() still calls ->invalidate_range(). Unknown values
 * of @event, @usage or @policy always give KVM_MM_INVAL_AT_START.
 */
static __always_inline enum kvm_mm_inval_point
kvm_mm_inval_point(u32 event, u32 usage, u32 policy, bool implicit)
{
	if (IS_ENABLED(CONFIG_KVM_MM_RUST))
		return kvm_mm_rs_inval_point(event, usage, policy, implicit);
	return kvm_mm_c_inval_point(event, usage, policy, implicit);
}

/*
 * Whether @uhva is in [@start, @end). One comparison per cache under its
 * lock: always C, the Rust twin is only checked against it.
 */
static __always_inline bool kvm_mm_covers_uhva(u64 start, u64 end, u64 uhva)
{
	return kvm_mm_c_covers_uhva(start, end, uhva);
}

/* Whether [@a_start, @a_end) and [@b_start, @b_end) intersect. */
static __always_inline bool kvm_mm_ranges_overlap(u64 a_start, u64 a_end,
						  u64 b_start, u64 b_end)
{
	return kvm_mm_c_ranges_overlap(a_start, a_end, b_start, b_end);
}

/*
 * Intersect [@start, @end) with the hvas of a memslot. A slot end that
 * overflows is taken as U64_MAX. Empty if there is no intersection or
 * @page_shift >= 64.
 */
static __always_inline struct kvm_mm_range
kvm_mm_clamp_to_slot(u64 start, u64 end, u64 slot_uaddr, u64 slot_npages,
		     u32 page_shift)
{
	if (IS_ENABLED(CONFIG_KVM_MM_RUST))
		return kvm_mm_rs_clamp_to_slot(start, end, slot_uaddr,
					       slot_npages, page_shift);
	return kvm_mm_c_clamp_to_slot(start, end, slot_uaddr, slot_npages,
				      page_shift);
}

/*
 * The gfns of every page that intersects [@hva_start, @hva_end), which
 * must be in the slot that maps @slot_uaddr to @base_gfn. Empty if the
 * hva range is empty or starts below @slot_uaddr, if @page_shift >= 64 or
 * if a gfn overflows.
 */
static __always_inline struct kvm_mm_range
kvm_mm_hva_range_to_gfn_range(u64 hva_start, u64 hva_end, u64 slot_uaddr,
			      u64 base_gfn, u32 page_shift)
{
	if (IS_ENABLED(CONFIG_KVM_MM_RUST))
		return kvm_mm_rs_hva_range_to_gfn_range(hva_start, hva_end,
							slot_uaddr, base_gfn,
							page_shift);
	return kvm_mm_c_hva_range_to_gfn_range(hva_start, hva_end, slot_uaddr,
					       base_gfn, page_shift);
}

/*
 * The smallest range covering both ranges. An empty current range is
 * replaced by the new one; an empty new range changes nothing.
 */
static __always_inline struct kvm_mm_range
kvm_mm_range_union(u64 cur_start, u64 cur_end, u64 new_start, u64 new_end)
{
	if (IS_ENABLED(CONFIG_KVM_MM_RUST))
		return kvm_mm_rs_range_union(cur_start, cur_end, new_start,
					     new_end);
	return kvm_mm_c_range_union(cur_start, cur_end, new_start, new_end);
}

#endif /* __KVM_MM_POLICY_H__ */
