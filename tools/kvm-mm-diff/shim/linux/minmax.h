/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Userspace stand-in for <linux/minmax.h>. Unlike the kernel's, these
 * evaluate an argument twice and check no types: kvm_mm_policy.c passes
 * only u64 variables and calls without side effects.
 */
#ifndef KVM_MM_SHIM_LINUX_MINMAX_H
#define KVM_MM_SHIM_LINUX_MINMAX_H

#define min(x, y) ((x) < (y) ? (x) : (y))
#define max(x, y) ((x) > (y) ? (x) : (y))

#endif
