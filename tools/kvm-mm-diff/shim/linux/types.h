/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Userspace stand-in for <linux/types.h>, with only what kvm_mm_policy.{c,h}
 * use. The shim headers let tools/kvm-mm-diff compile the kernel file
 * unchanged.
 */
#ifndef KVM_MM_SHIM_LINUX_TYPES_H
#define KVM_MM_SHIM_LINUX_TYPES_H

#include <stdbool.h>

/* The kernel's x86-64 definitions (asm-generic/int-ll64.h). */
typedef unsigned int u32;
typedef unsigned long long u64;

#endif
