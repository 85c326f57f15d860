/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Out-of-line copies of the static inline kvm_mm_*() wrappers in
 * kvm_mm_policy.h, so that the tests can call the header as kernel code
 * does. dispatch.c is compiled twice: with CONFIG_KVM_MM_RUST=0 it defines
 * kvm_mm_diff_c_*(), with CONFIG_KVM_MM_RUST=1 kvm_mm_diff_rs_*().
 */
#ifndef KVM_MM_DIFF_H
#define KVM_MM_DIFF_H

#include "kvm_mm_policy.h"

#define KVM_MM_DIFF_DECLARE(prefix)					\
	u32 prefix##inval_point(u32 event, u32 usage, u32 policy,	\
				bool implicit);				\
	bool prefix##covers_uhva(u64 start, u64 end, u64 uhva);		\
	bool prefix##ranges_overlap(u64 a_start, u64 a_end,		\
				    u64 b_start, u64 b_end);		\
	struct kvm_mm_range prefix##clamp_to_slot(u64 start, u64 end,	\
						  u64 slot_uaddr,	\
						  u64 slot_npages,	\
						  u32 page_shift);	\
	struct kvm_mm_range prefix##hva_range_to_gfn_range(		\
		u64 hva_start, u64 hva_end, u64 slot_uaddr,		\
		u64 base_gfn, u32 page_shift);				\
	struct kvm_mm_range prefix##range_union(u64 cur_start,		\
						u64 cur_end,		\
						u64 new_start,		\
						u64 new_end);

KVM_MM_DIFF_DECLARE(kvm_mm_diff_c_)
KVM_MM_DIFF_DECLARE(kvm_mm_diff_rs_)

#endif
