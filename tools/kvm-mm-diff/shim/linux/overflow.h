/* SPDX-License-Identifier: GPL-2.0-only */
/* Userspace stand-in for <linux/overflow.h>: the 6.1 definition is the builtin. */
#ifndef KVM_MM_SHIM_LINUX_OVERFLOW_H
#define KVM_MM_SHIM_LINUX_OVERFLOW_H

#define check_add_overflow(a, b, d) __builtin_add_overflow(a, b, d)

#endif
