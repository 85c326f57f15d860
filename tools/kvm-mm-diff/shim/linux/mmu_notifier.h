/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Userspace stand-in for <linux/mmu_notifier.h>: only the event values,
 * as Linux 6.1 defines them. In a kernel build, kvm_mm_policy.c checks its
 * mirror against the real header.
 */
#ifndef KVM_MM_SHIM_LINUX_MMU_NOTIFIER_H
#define KVM_MM_SHIM_LINUX_MMU_NOTIFIER_H

enum mmu_notifier_event {
	MMU_NOTIFY_UNMAP = 0,
	MMU_NOTIFY_CLEAR = 1,
	MMU_NOTIFY_PROTECTION_VMA = 2,
	MMU_NOTIFY_PROTECTION_PAGE = 3,
	MMU_NOTIFY_SOFT_DIRTY = 4,
	MMU_NOTIFY_RELEASE = 5,
	MMU_NOTIFY_MIGRATE = 6,
	MMU_NOTIFY_EXCLUSIVE = 7,
};

#endif
