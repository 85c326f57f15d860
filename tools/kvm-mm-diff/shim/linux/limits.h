/* SPDX-License-Identifier: GPL-2.0-only */
/* Userspace stand-in for <linux/limits.h>. */
#ifndef KVM_MM_SHIM_LINUX_LIMITS_H
#define KVM_MM_SHIM_LINUX_LIMITS_H

#include <linux/types.h>

#define U64_MAX ((u64)~0ULL)

#endif
