/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Force-included (-include) when kmm builds the KVM selftests of the
 * 6.1.192 base: two stable backports to 6.1 use helpers that 6.1's own
 * selftests do not have.
 *
 * - dirty_log_test.c uses TEST_ASSERT_EQ(), added to test_util.h in 6.6.
 * - steal_time.c uses __DECLARE_FLEX_ARRAY() from uapi linux/stddef.h
 *   without including it first.
 *
 * The header only adds definitions that are missing; it changes no test.
 */
#ifndef KMM_LINUX_6_1_192_BUILD_H
#define KMM_LINUX_6_1_192_BUILD_H

#include <linux/stddef.h>

#ifndef TEST_ASSERT_EQ
#define TEST_ASSERT_EQ(a, b)						\
	TEST_ASSERT((a) == (b), "%s == %s: %#lx != %#lx", #a, #b,	\
		    (unsigned long)(a), (unsigned long)(b))
#endif

#endif /* KMM_LINUX_6_1_192_BUILD_H */
