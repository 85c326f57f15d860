/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Userspace stand-in for <linux/compiler_types.h>, which Kbuild
 * force-includes; build.rs passes -include for this one too. Only what
 * kvm_mm_policy.h uses.
 */
#ifndef KVM_MM_SHIM_LINUX_COMPILER_TYPES_H
#define KVM_MM_SHIM_LINUX_COMPILER_TYPES_H

#define __always_inline inline __attribute__((__always_inline__))

#endif
