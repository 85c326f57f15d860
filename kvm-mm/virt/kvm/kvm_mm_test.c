// SPDX-License-Identifier: GPL-2.0-only
/*
 * KUnit tests of the gfn_to_pfn cache invalidation policy, run against
 * the implementation that is built: C, or Rust with CONFIG_KVM_MM_RUST.
 */

#include <kunit/test.h>
#include <linux/kvm_host.h>
#include <linux/mmu_notifier.h>

#include "kvm_mm_policy.h"

#define AT_START	KVM_MM_INVAL_AT_START
#define DEFERRABLE	KVM_MM_INVAL_DEFERRABLE

#define P_START		KVM_MM_PFNCACHE_INVAL_START
#define P_SPLIT		KVM_MM_PFNCACHE_INVAL_SPLIT
#define P_RANGE_ONLY	KVM_MM_PFNCACHE_INVAL_RANGE_ONLY

#define HOST		KVM_HOST_USES_PFN
#define GUEST		KVM_GUEST_USES_PFN
#define BOTH		KVM_GUEST_AND_HOST_USE_PFN

struct inval_case {
	const char *desc;
	u32 event;
	u32 usage;
	u32 policy;
	bool implicit;
	u32 expected;
};

static const struct inval_case inval_cases[] = {
	/* "start" keeps upstream behaviour: everything at start. */
	{ "start unmap", MMU_NOTIFY_UNMAP, HOST, P_START, true, AT_START },
	{ "start clear", MMU_NOTIFY_CLEAR, HOST, P_START, true, AT_START },
	{ "start mprotect", MMU_NOTIFY_PROTECTION_VMA, HOST, P_START, true, AT_START },

	/* "split" defers only pure unmaps of host-only caches... */
	{ "split unmap", MMU_NOTIFY_UNMAP, HOST, P_SPLIT, true, DEFERRABLE },
	{ "split unmap, no usage bits", MMU_NOTIFY_UNMAP, 0, P_SPLIT, true, DEFERRABLE },
	/* ...while the implicit ->invalidate_range() from _end exists... */
	{ "split unmap, no implicit call", MMU_NOTIFY_UNMAP, HOST, P_SPLIT, false, AT_START },
	/* ...and never when the guest uses the pfn (no vCPU kick there). */
	{ "split unmap, guest pfn", MMU_NOTIFY_UNMAP, GUEST, P_SPLIT, true, AT_START },
	{ "split unmap, guest and host", MMU_NOTIFY_UNMAP, BOTH, P_SPLIT, true, AT_START },
	/* CLEAR hides downgrades: MADV_FREE, KSM write-protect (P1). */
	{ "split clear", MMU_NOTIFY_CLEAR, HOST, P_SPLIT, true, AT_START },
	{ "split protection vma", MMU_NOTIFY_PROTECTION_VMA, HOST, P_SPLIT, true, AT_START },
	{ "split protection page", MMU_NOTIFY_PROTECTION_PAGE, HOST, P_SPLIT, true, AT_START },
	{ "split soft dirty", MMU_NOTIFY_SOFT_DIRTY, HOST, P_SPLIT, true, AT_START },
	{ "split release", MMU_NOTIFY_RELEASE, HOST, P_SPLIT, true, AT_START },
	{ "split migrate", MMU_NOTIFY_MIGRATE, HOST, P_SPLIT, true, AT_START },
	{ "split exclusive", MMU_NOTIFY_EXCLUSIVE, HOST, P_SPLIT, true, AT_START },

	/* "range_only" is the rejected RFC: it defers every known event. */
	{ "range_only unmap", MMU_NOTIFY_UNMAP, HOST, P_RANGE_ONLY, true, DEFERRABLE },
	{ "range_only mprotect", MMU_NOTIFY_PROTECTION_VMA, HOST, P_RANGE_ONLY, false, DEFERRABLE },
	{ "range_only soft dirty, guest", MMU_NOTIFY_SOFT_DIRTY, GUEST,
	  P_RANGE_ONLY, true, DEFERRABLE },

	/* What is not known is never deferred. */
	{ "unknown event", MMU_NOTIFY_EXCLUSIVE + 1, HOST, P_SPLIT, true, AT_START },
	{ "unknown event, range_only", 0xffffffff, HOST, P_RANGE_ONLY, true, AT_START },
	{ "unknown policy", MMU_NOTIFY_UNMAP, HOST, P_RANGE_ONLY + 1, true, AT_START },
	{ "unknown policy, all ones", MMU_NOTIFY_UNMAP, HOST, 0xffffffff, true, AT_START },
};

static void inval_case_desc(const struct inval_case *c, char *desc)
{
	strscpy(desc, c->desc, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(inval, inval_cases, inval_case_desc);

static void kvm_mm_inval_point_test(struct kunit *test)
{
	const struct inval_case *c = test->param_value;

	KUNIT_EXPECT_EQ_MSG(test,
			    (u32)kvm_mm_inval_point(c->event, c->usage,
						    c->policy, c->implicit),
			    c->expected, "event %u usage %u policy %u implicit %d",
			    c->event, c->usage, c->policy, c->implicit);
}

/* Properties over every combination, beyond the table above. */
static void kvm_mm_inval_point_all_test(struct kunit *test)
{
	u32 event, usage, policy;
	int implicit;

	for (event = 0; event <= MMU_NOTIFY_EXCLUSIVE + 2; event++)
		for (usage = 0; usage <= BOTH; usage++)
			for (policy = 0; policy <= P_RANGE_ONLY + 1; policy++)
				for (implicit = 0; implicit <= 1; implicit++) {
					u32 got = kvm_mm_inval_point(event, usage, policy,
								     implicit);
					bool defer = got == DEFERRABLE;

					KUNIT_EXPECT_TRUE(test,
							  got == AT_START || defer);
					if (event > MMU_NOTIFY_EXCLUSIVE ||
					    policy > P_RANGE_ONLY ||
					    policy == P_START)
						KUNIT_EXPECT_FALSE(test, defer);
					if (policy == P_SPLIT)
						KUNIT_EXPECT_EQ(test, defer,
								event == MMU_NOTIFY_UNMAP &&
								!(usage & GUEST) && implicit);
				}
}

static void kvm_mm_covers_uhva_test(struct kunit *test)
{
	KUNIT_EXPECT_TRUE(test, kvm_mm_covers_uhva(0x1000, 0x2000, 0x1000));
	KUNIT_EXPECT_TRUE(test, kvm_mm_covers_uhva(0x1000, 0x2000, 0x1fff));
	KUNIT_EXPECT_FALSE(test, kvm_mm_covers_uhva(0x1000, 0x2000, 0x2000));
	KUNIT_EXPECT_FALSE(test, kvm_mm_covers_uhva(0x1000, 0x2000, 0xfff));
	/* Empty and inverted ranges cover nothing. */
	KUNIT_EXPECT_FALSE(test, kvm_mm_covers_uhva(0x1000, 0x1000, 0x1000));
	KUNIT_EXPECT_FALSE(test, kvm_mm_covers_uhva(0x2000, 0x1000, 0x1800));
	/* clear_refs invalidates 0..-1: the end is exclusive. */
	KUNIT_EXPECT_TRUE(test, kvm_mm_covers_uhva(0, U64_MAX, 0));
	KUNIT_EXPECT_FALSE(test, kvm_mm_covers_uhva(0, U64_MAX, U64_MAX));
}

static void kvm_mm_ranges_overlap_test(struct kunit *test)
{
	KUNIT_EXPECT_TRUE(test,
			  kvm_mm_ranges_overlap(0x1000, 0x3000, 0x2000, 0x4000));
	KUNIT_EXPECT_TRUE(test,
			  kvm_mm_ranges_overlap(0, U64_MAX, 0x2000, 0x2001));
	/* Adjacent ranges do not overlap. */
	KUNIT_EXPECT_FALSE(test,
			   kvm_mm_ranges_overlap(0x1000, 0x2000, 0x2000, 0x3000));
	KUNIT_EXPECT_FALSE(test,
			   kvm_mm_ranges_overlap(0x2000, 0x3000, 0x1000, 0x2000));
	KUNIT_EXPECT_FALSE(test,
			   kvm_mm_ranges_overlap(0x1000, 0x1000, 0, U64_MAX));
}

static void kvm_mm_clamp_to_slot_test(struct kunit *test)
{
	struct kvm_mm_range r;

	/* A slot of two 4K pages at 0x2000. */
	r = kvm_mm_clamp_to_slot(0x1000, 0x5000, 0x2000, 2, 12);
	KUNIT_EXPECT_EQ(test, r.start, 0x2000ULL);
	KUNIT_EXPECT_EQ(test, r.end, 0x4000ULL);
	r = kvm_mm_clamp_to_slot(0x2800, 0x3000, 0x2000, 2, 12);
	KUNIT_EXPECT_EQ(test, r.start, 0x2800ULL);
	KUNIT_EXPECT_EQ(test, r.end, 0x3000ULL);
	KUNIT_EXPECT_TRUE(test,
			  kvm_mm_range_empty(kvm_mm_clamp_to_slot(0x4000, 0x5000, 0x2000, 2, 12)));
	KUNIT_EXPECT_TRUE(test,
			  kvm_mm_range_empty(kvm_mm_clamp_to_slot(0, 0x2000, 0x2000, 2, 12)));
	/* A slot end that overflows saturates instead of wrapping. */
	r = kvm_mm_clamp_to_slot(0, U64_MAX, U64_MAX - 0xfff, 2, 12);
	KUNIT_EXPECT_EQ(test, r.start, U64_MAX - 0xfff);
	KUNIT_EXPECT_EQ(test, r.end, U64_MAX);
}

/* No gfns for [@start, @end) in a slot mapping 0x2000 to gfn 0x100. */
static bool no_gfns(u64 start, u64 end)
{
	return kvm_mm_range_empty(kvm_mm_hva_range_to_gfn_range(start, end, 0x2000,
								 0x100, 12));
}

static void kvm_mm_hva_range_to_gfn_range_test(struct kunit *test)
{
	struct kvm_mm_range r;

	/* Every page that intersects [hva_start, hva_end) counts. */
	r = kvm_mm_hva_range_to_gfn_range(0x2800, 0x3001, 0x2000, 0x100, 12);
	KUNIT_EXPECT_EQ(test, r.start, 0x100ULL);
	KUNIT_EXPECT_EQ(test, r.end, 0x102ULL);
	r = kvm_mm_hva_range_to_gfn_range(0x2000, 0x3000, 0x2000, 0x100, 12);
	KUNIT_EXPECT_EQ(test, r.start, 0x100ULL);
	KUNIT_EXPECT_EQ(test, r.end, 0x101ULL);
	KUNIT_EXPECT_TRUE(test, no_gfns(0x1000, 0x3000));
	KUNIT_EXPECT_TRUE(test, no_gfns(0x3000, 0x3000));
	/* A range that ends at the top of the address space must not wrap. */
	r = kvm_mm_hva_range_to_gfn_range(0x2000, U64_MAX, 0x2000, 0x100, 12);
	KUNIT_EXPECT_EQ(test, r.start, 0x100ULL);
	KUNIT_EXPECT_EQ(test, r.end, 0x100ULL + ((U64_MAX - 1 - 0x2000) >> 12) + 1);
}

static void kvm_mm_range_union_test(struct kunit *test)
{
	struct kvm_mm_range r;

	r = kvm_mm_range_union(0x1000, 0x3000, 0x5000, 0x7000);
	KUNIT_EXPECT_EQ(test, r.start, 0x1000ULL);
	KUNIT_EXPECT_EQ(test, r.end, 0x7000ULL);
	/* An empty current range is replaced by the new one. */
	r = kvm_mm_range_union(0, 0, 0x5000, 0x7000);
	KUNIT_EXPECT_EQ(test, r.start, 0x5000ULL);
	KUNIT_EXPECT_EQ(test, r.end, 0x7000ULL);
}

static struct kunit_case kvm_mm_test_cases[] = {
	KUNIT_CASE_PARAM(kvm_mm_inval_point_test, inval_gen_params),
	KUNIT_CASE(kvm_mm_inval_point_all_test),
	KUNIT_CASE(kvm_mm_covers_uhva_test),
	KUNIT_CASE(kvm_mm_ranges_overlap_test),
	KUNIT_CASE(kvm_mm_clamp_to_slot_test),
	KUNIT_CASE(kvm_mm_hva_range_to_gfn_range_test),
	KUNIT_CASE(kvm_mm_range_union_test),
	{}
};

static struct kunit_suite kvm_mm_test_suite = {
	.name = "kvm_mm",
	.test_cases = kvm_mm_test_cases,
};

kunit_test_suite(kvm_mm_test_suite);
