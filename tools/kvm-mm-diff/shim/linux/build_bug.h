/* SPDX-License-Identifier: GPL-2.0-only */
/* Userspace stand-in for <linux/build_bug.h>: a real assertion, as in the kernel. */
#ifndef KVM_MM_SHIM_LINUX_BUILD_BUG_H
#define KVM_MM_SHIM_LINUX_BUILD_BUG_H

#define static_assert(expr) _Static_assert(expr, #expr)

#endif
