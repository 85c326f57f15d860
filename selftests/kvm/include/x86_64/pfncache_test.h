/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Helpers of the gfn_to_pfn cache tests: Xen event channel sends through the
 * shared_info cache, seen through the page's pending bitmap, soft-dirty
 * tracking, and the kvm.pfncache_inval policy and per-VM stats.
 */
#ifndef SELFTEST_KVM_PFNCACHE_TEST_H
#define SELFTEST_KVM_PFNCACHE_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include <linux/bits.h>
#include <linux/compiler.h>

#include "test_util.h"
#include "kvm_util.h"

#define XEN_HYPERCALL_MSR	0x40000000
#define EVTCHN_PORT		1

/*
 * 64-bit struct shared_info: 32 vcpu_info of 64 bytes, then the
 * evtchn_pending bitmap.
 */
#define EVTCHN_PENDING_OFFSET	(32 * 64)

/* Soft-dirty bit of a /proc/pid/pagemap entry. */
#define PM_SOFT_DIRTY		BIT_ULL(55)

/* KVM sets the bit behind the compiler's back: always access memory. */
static inline unsigned long *pending_word(uint8_t *page)
{
	return (unsigned long *)(page + EVTCHN_PENDING_OFFSET);
}

static inline bool port_pending(uint8_t *page)
{
	return READ_ONCE(*pending_word(page)) & BIT(EVTCHN_PORT);
}

/* Atomic, as KVM may set other bits of the word at the same time. */
static inline void clear_port(uint8_t *page)
{
	__atomic_fetch_and(pending_word(page), ~BIT(EVTCHN_PORT),
			   __ATOMIC_SEQ_CST);
}

/* KVM_XEN_HVM_EVTCHN_SEND to @vcpu; 0 or an errno. */
static inline int evtchn_send(struct kvm_vm *vm, struct kvm_vcpu *vcpu)
{
	struct kvm_irq_routing_xen_evtchn e = {
		.port = EVTCHN_PORT,
		.vcpu = vcpu->id,
		.priority = KVM_IRQ_ROUTING_XEN_EVTCHN_PRIO_2LEVEL,
	};

	return __vm_ioctl(vm, KVM_XEN_HVM_EVTCHN_SEND, &e) ? errno : 0;
}

static inline void set_shinfo_gpa(struct kvm_vm *vm, uint64_t gpa)
{
	struct kvm_xen_hvm_attr si = {
		.type = KVM_XEN_ATTR_TYPE_SHARED_INFO,
		.u.shared_info.gfn = gpa / getpagesize(),
	};

	vm_ioctl(vm, KVM_XEN_HVM_SET_ATTR, &si);
}

/* A 64-bit Xen guest that userspace can send event channels to. */
static inline void xen_evtchn_setup(struct kvm_vm *vm, uint64_t shinfo_gpa)
{
	struct kvm_xen_hvm_config hvmc = {
		.flags = KVM_XEN_HVM_CONFIG_INTERCEPT_HCALL |
			 KVM_XEN_HVM_CONFIG_EVTCHN_SEND,
		.msr = XEN_HYPERCALL_MSR,
	};
	struct kvm_xen_hvm_attr lm = {
		.type = KVM_XEN_ATTR_TYPE_LONG_MODE,
		.u.long_mode = 1,
	};

	vm_ioctl(vm, KVM_XEN_HVM_CONFIG, &hvmc);
	vm_ioctl(vm, KVM_XEN_HVM_SET_ATTR, &lm);
	set_shinfo_gpa(vm, shinfo_gpa);
}

static inline uint64_t pagemap_entry(void *addr, size_t page_size)
{
	uint64_t entry = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	TEST_ASSERT(fd >= 0, "open(/proc/self/pagemap) failed: %s",
		    strerror(errno));
	TEST_ASSERT(pread(fd, &entry, sizeof(entry),
			  (uintptr_t)addr / page_size * sizeof(entry)) ==
		    sizeof(entry), "pagemap read failed");
	close(fd);
	return entry;
}

static inline void clear_soft_dirty(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY);

	TEST_ASSERT(fd >= 0, "open(/proc/self/clear_refs) failed: %s",
		    strerror(errno));
	TEST_ASSERT(write(fd, "4", 1) == 1, "clear_refs write failed");
	close(fd);
}

static inline void print_pfncache_policy(void)
{
	char buf[32] = "start (no such parameter)\n";
	int fd = open("/sys/module/kvm/parameters/pfncache_inval", O_RDONLY);

	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);

		buf[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	ksft_print_msg("kvm.pfncache_inval=%s", buf);
}

/* A pfncache stat, or -1 on a kernel that does not have it. */
static inline long pfncache_stat(struct kvm_vm *vm, const char *name)
{
	uint64_t v = UINT64_MAX;

	__vm_get_stat(vm, name, &v, 1);
	return v == UINT64_MAX ? -1 : (long)v;
}

static inline void print_pfncache_stats(struct kvm_vm *vm)
{
	ksft_print_msg("pfncache stats: inval_start=%ld inval_range=%ld retries=%ld waits=%ld\n",
		       pfncache_stat(vm, "pfncache_inval_start"),
		       pfncache_stat(vm, "pfncache_inval_range"),
		       pfncache_stat(vm, "pfncache_refresh_retries"),
		       pfncache_stat(vm, "pfncache_refresh_waits"));
}

#endif /* SELFTEST_KVM_PFNCACHE_TEST_H */
