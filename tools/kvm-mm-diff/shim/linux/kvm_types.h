/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Userspace stand-in for <linux/kvm_types.h>: only the pfn cache usage
 * bits, as Linux 6.1 defines them.
 */
#ifndef KVM_MM_SHIM_LINUX_KVM_TYPES_H
#define KVM_MM_SHIM_LINUX_KVM_TYPES_H

enum pfn_cache_usage {
	KVM_GUEST_USES_PFN = 1 << 0,
	KVM_HOST_USES_PFN = 1 << 1,
	KVM_GUEST_AND_HOST_USE_PFN = KVM_GUEST_USES_PFN | KVM_HOST_USES_PFN,
};

#endif
