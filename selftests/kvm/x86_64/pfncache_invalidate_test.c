// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfncache_invalidate_test: does KVM stop writing through a gfn_to_pfn
 * cache when the primary MMU changes the page behind it?
 *
 * The cache under test is the Xen shared_info cache: KVM_XEN_HVM_EVTCHN_SEND
 * sets a bit in the page through the cache's kernel mapping, never through
 * userspace's. The page is memfd-backed and mapped twice, once for the
 * memslot (changed by each case) and once as an alias that the cases never
 * touch, so a write through a stale cache is seen from userspace.
 *
 * Each case primes the cache, changes the memslot's mapping and sends:
 *  - mprotect_ro: the page became read-only; the send must fail and must
 *    not reach the page.
 *  - madv_dontneed: the anonymous page was zapped; the send must land in
 *    the page that is mapped now.
 *  - munmap, mremap: the page left the memslot; the send must fail and must
 *    not reach the page, which is still mapped elsewhere after mremap().
 *  - memslot_remap: the memslot was deleted, another page mapped at its hva
 *    and the memslot added back; the send must land in the new page.
 *  - soft_dirty: after clear_refs, the send must write-fault the page so
 *    that it is soft-dirty again.
 *  - fork_cow: fork() write-protects private anonymous pages for
 *    copy-on-write. With the shared_info, kvmclock and Xen runstate caches
 *    on such pages, KVM's next writes through each must land in pages of
 *    the parent's own, never in the ones the child now shares: the child
 *    compares its copies before and after.
 *
 * All must pass whatever kvm.pfncache_inval is, except the test-only
 * "range_only" with mmu_notifier.no_implicit_invalidate_range=1: that is
 * the 2021 RFC behaviour on a kernel without the implicit
 * ->invalidate_range() call, under which mremap, soft_dirty and fork_cow
 * fail.
 * mprotect_ro passes even then: mprotect() flushes through mmu_gather,
 * whose flush calls ->invalidate_range() before mprotect() returns, so for
 * mprotect() the RFC's bug is a window while the call runs, not a state
 * that a test can observe afterwards.
 */
#define _GNU_SOURCE /* memfd_create(), mremap() */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <asm/kvm_para.h>
#include <asm/pvclock-abi.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "pfncache_test.h"

#define SHMEM_SLOT		10
#define SHMEM_GPA		0xc0000000ULL
#define SHMEM_PAGES		2
#define SHINFO_PAGE		0
#define VCPU_INFO_PAGE		1

#define ANON_SLOT		11
#define ANON_GPA		0xc0100000ULL
#define ANON_PAGES		3
#define ANON_SHINFO_PAGE	0
#define ANON_CLOCK_PAGE		1
#define ANON_RUNSTATE_PAGE	2

/* The parts of struct vcpu_runstate_info (64-bit) that the test reads. */
#define RUNSTATE_ENTRY_TIME	8

struct pfncache_test {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	size_t page_size;
	int memfd;
	uint8_t *shmem;		/* memslot SHMEM_SLOT */
	uint8_t *alias;		/* the same memfd pages, never changed */
	uint8_t *anon;		/* memslot ANON_SLOT, anonymous pages */
	bool runstate;		/* KVM_XEN_HVM_CONFIG_RUNSTATE */
};

static void guest_code(void)
{
	for (;;)
		GUEST_SYNC(0);
}

static void run_vcpu(struct pfncache_test *t)
{
	struct ucall uc;

	vcpu_run(t->vcpu);
	TEST_ASSERT(get_ucall(t->vcpu, &uc) == UCALL_SYNC,
		    "unexpected exit %u from the guest",
		    t->vcpu->run->exit_reason);
}

/* Make the cache valid: a send that succeeds went through it. */
static void prime(struct pfncache_test *t, uint8_t *page)
{
	int ret = evtchn_send(t->vm, t->vcpu);

	TEST_ASSERT(!ret, "priming send failed: %s", strerror(ret));
	TEST_ASSERT(port_pending(page), "priming send did not reach the page");
	clear_port(page);
}

static void *map_shmem_page(struct pfncache_test *t, void *addr, int page)
{
	void *p = mmap(addr, t->page_size, PROT_READ | PROT_WRITE,
		       MAP_SHARED | (addr ? MAP_FIXED : 0), t->memfd,
		       page * t->page_size);

	TEST_ASSERT(p != MAP_FAILED, "mmap of the memfd failed: %s",
		    strerror(errno));
	return p;
}

static void setup(struct pfncache_test *t)
{
	size_t size;

	t->page_size = getpagesize();
	size = SHMEM_PAGES * t->page_size;

	t->vm = vm_create_with_one_vcpu(&t->vcpu, guest_code);

	t->memfd = memfd_create("pfncache_invalidate_test", 0);
	TEST_ASSERT(t->memfd >= 0, "memfd_create failed: %s", strerror(errno));
	TEST_ASSERT(!ftruncate(t->memfd, size), "ftruncate failed");

	t->shmem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
			t->memfd, 0);
	t->alias = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
			t->memfd, 0);
	t->anon = mmap(NULL, ANON_PAGES * t->page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(t->shmem != MAP_FAILED && t->alias != MAP_FAILED &&
		    t->anon != MAP_FAILED, "mmap failed: %s", strerror(errno));

	vm_set_user_memory_region(t->vm, SHMEM_SLOT, 0, SHMEM_GPA, size,
				  t->shmem);
	vm_set_user_memory_region(t->vm, ANON_SLOT, 0, ANON_GPA,
				  ANON_PAGES * t->page_size, t->anon);

	xen_evtchn_setup(t->vm, SHMEM_GPA + SHINFO_PAGE * t->page_size);

	/* On its own page, so that only the shared_info cache is changed. */
	struct kvm_xen_vcpu_attr vi = {
		.type = KVM_XEN_VCPU_ATTR_TYPE_VCPU_INFO,
		.u.gpa = SHMEM_GPA + VCPU_INFO_PAGE * t->page_size,
	};
	vcpu_ioctl(t->vcpu, KVM_XEN_VCPU_SET_ATTR, &vi);
}

static uint8_t *shinfo(struct pfncache_test *t)
{
	return t->shmem + SHINFO_PAGE * t->page_size;
}

static uint8_t *shinfo_alias(struct pfncache_test *t)
{
	return t->alias + SHINFO_PAGE * t->page_size;
}

/*
 * A send must fail with EFAULT and leave the page alone while the memslot
 * has no writable mapping of it.
 */
static bool send_is_refused(struct pfncache_test *t, const char *name)
{
	int ret = evtchn_send(t->vm, t->vcpu);
	bool reached = port_pending(shinfo_alias(t));

	if (ret != EFAULT || reached) {
		ksft_print_msg("%s: send returned %s, page %s\n", name,
			       ret ? strerror(ret) : "success",
			       reached ? "written" : "untouched");
		clear_port(shinfo_alias(t));
		return false;
	}
	return true;
}

static bool send_lands(struct pfncache_test *t, uint8_t *page,
		       const char *name)
{
	int ret = evtchn_send(t->vm, t->vcpu);
	bool reached = port_pending(page);

	clear_port(page);
	if (ret || !reached) {
		ksft_print_msg("%s: send returned %s, page %s\n", name,
			       ret ? strerror(ret) : "success",
			       reached ? "written" : "untouched");
		return false;
	}
	return true;
}

static void test_mprotect_ro(struct pfncache_test *t)
{
	bool ok;

	prime(t, shinfo_alias(t));
	TEST_ASSERT(!mprotect(shinfo(t), t->page_size, PROT_READ),
		    "mprotect(PROT_READ) failed");
	ok = send_is_refused(t, "mprotect_ro");
	TEST_ASSERT(!mprotect(shinfo(t), t->page_size,
			      PROT_READ | PROT_WRITE),
		    "mprotect(PROT_READ | PROT_WRITE) failed");
	ok &= send_lands(t, shinfo_alias(t), "mprotect_ro, after PROT_WRITE");
	ksft_test_result(ok, "mprotect_ro\n");
}

static void test_madv_dontneed(struct pfncache_test *t)
{
	bool ok;

	set_shinfo_gpa(t->vm, ANON_GPA);
	prime(t, t->anon);
	TEST_ASSERT(!madvise(t->anon, t->page_size, MADV_DONTNEED),
		    "madvise(MADV_DONTNEED) failed");
	/* The old page is gone: the bit must be in the one mapped now. */
	ok = send_lands(t, t->anon, "madv_dontneed");
	set_shinfo_gpa(t->vm, SHMEM_GPA + SHINFO_PAGE * t->page_size);
	ksft_test_result(ok, "madv_dontneed\n");
}

static void test_munmap(struct pfncache_test *t)
{
	bool ok;

	prime(t, shinfo_alias(t));
	TEST_ASSERT(!munmap(shinfo(t), t->page_size), "munmap failed");
	ok = send_is_refused(t, "munmap");
	map_shmem_page(t, shinfo(t), SHINFO_PAGE);
	ok &= send_lands(t, shinfo_alias(t), "munmap, after mmap");
	ksft_test_result(ok, "munmap\n");
}

/*
 * The memslot is deleted, another page is mapped at its hva while no
 * memslot covers it, and the memslot is added back at the same hva. The
 * cache holds no page reference and no invalidation of the old page
 * needs to reach it while no memslot covers the hva, so the send must
 * resolve the hva again: it must land in the new page, not the old one.
 */
static void test_memslot_remap(struct pfncache_test *t)
{
	size_t size = SHMEM_PAGES * t->page_size;
	uint8_t *new_alias;
	int memfd;
	bool ok;

	memfd = memfd_create("pfncache_invalidate_test_remap", 0);
	TEST_ASSERT(memfd >= 0, "memfd_create failed: %s", strerror(errno));
	TEST_ASSERT(!ftruncate(memfd, t->page_size), "ftruncate failed");
	new_alias = mmap(NULL, t->page_size, PROT_READ | PROT_WRITE,
			 MAP_SHARED, memfd, 0);
	TEST_ASSERT(new_alias != MAP_FAILED, "mmap failed: %s",
		    strerror(errno));

	prime(t, shinfo_alias(t));
	vm_set_user_memory_region(t->vm, SHMEM_SLOT, 0, SHMEM_GPA, 0, NULL);
	TEST_ASSERT(mmap(shinfo(t), t->page_size, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_FIXED, memfd, 0) == shinfo(t),
		    "mmap of the new page failed: %s", strerror(errno));
	vm_set_user_memory_region(t->vm, SHMEM_SLOT, 0, SHMEM_GPA, size,
				  t->shmem);

	ok = send_lands(t, new_alias, "memslot_remap");
	if (port_pending(shinfo_alias(t))) {
		ksft_print_msg("memslot_remap: KVM wrote the page that left the memslot\n");
		clear_port(shinfo_alias(t));
		ok = false;
	}

	/* Put the memfd's own page back the same way. */
	vm_set_user_memory_region(t->vm, SHMEM_SLOT, 0, SHMEM_GPA, 0, NULL);
	map_shmem_page(t, shinfo(t), SHINFO_PAGE);
	vm_set_user_memory_region(t->vm, SHMEM_SLOT, 0, SHMEM_GPA, size,
				  t->shmem);
	ok &= send_lands(t, shinfo_alias(t), "memslot_remap, after restoring");

	munmap(new_alias, t->page_size);
	close(memfd);
	ksft_test_result(ok, "memslot_remap\n");
}

static void test_mremap(struct pfncache_test *t)
{
	void *spare, *moved;
	bool ok;

	spare = mmap(NULL, t->page_size, PROT_NONE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(spare != MAP_FAILED, "mmap failed");

	prime(t, shinfo_alias(t));
	/*
	 * mremap() unmaps the old address with no ->invalidate_range() call
	 * of its own: only the implicit one from invalidate_range_end()
	 * reaches KVM, if there is one.
	 */
	moved = mremap(shinfo(t), t->page_size, t->page_size,
		       MREMAP_MAYMOVE | MREMAP_FIXED, spare);
	TEST_ASSERT(moved == spare, "mremap failed: %s", strerror(errno));
	ok = send_is_refused(t, "mremap");
	moved = mremap(spare, t->page_size, t->page_size,
		       MREMAP_MAYMOVE | MREMAP_FIXED, shinfo(t));
	TEST_ASSERT(moved == (void *)shinfo(t), "mremap back failed: %s",
		    strerror(errno));
	ok &= send_lands(t, shinfo_alias(t), "mremap, after moving back");
	ksft_test_result(ok, "mremap\n");
}

static void test_soft_dirty(struct pfncache_test *t)
{
	bool ok;

	prime(t, shinfo_alias(t));
	clear_soft_dirty();
	if (pagemap_entry(shinfo(t), t->page_size) & PM_SOFT_DIRTY) {
		ksft_test_result_skip("soft_dirty: clear_refs did not clear the bit\n");
		return;
	}
	ok = send_lands(t, shinfo_alias(t), "soft_dirty");
	if (!(pagemap_entry(shinfo(t), t->page_size) & PM_SOFT_DIRTY)) {
		ksft_print_msg("soft_dirty: KVM wrote the page without making it soft-dirty\n");
		ok = false;
	}
	ksft_test_result(ok, "soft_dirty\n");
}

static uint8_t *anon_page(struct pfncache_test *t, int page)
{
	return t->anon + page * t->page_size;
}

static uint64_t runstate_entry_time(struct pfncache_test *t)
{
	return READ_ONCE(*(uint64_t *)(anon_page(t, ANON_RUNSTATE_PAGE) +
				       RUNSTATE_ENTRY_TIME));
}

/* kvmclock is written at the next entry after KVM_REQ_CLOCK_UPDATE. */
static void request_clock_update(struct pfncache_test *t)
{
	struct kvm_clock_data data = {};

	vm_ioctl(t->vm, KVM_GET_CLOCK, &data);
	vm_ioctl(t->vm, KVM_SET_CLOCK, &data);
}

/*
 * The child: copy the pages, tell the parent, wait for it to make KVM write
 * through every cache, and exit with a bit set for each page that changed.
 */
static void fork_child(struct pfncache_test *t, int ready, int go)
{
	size_t ps = t->page_size;
	uint8_t *copy = malloc(ANON_PAGES * ps);
	int page, changed = 0;
	char c = 0;

	if (!copy)
		_exit(0x80);
	memcpy(copy, t->anon, ANON_PAGES * ps);
	if (write(ready, &c, 1) != 1 || read(go, &c, 1) != 1)
		_exit(0x80);
	for (page = 0; page < ANON_PAGES; page++)
		if (memcmp(copy + page * ps, anon_page(t, page), ps))
			changed |= 1 << page;
	_exit(changed);
}

static void test_fork_cow(struct pfncache_test *t)
{
	static const char * const names[ANON_PAGES] = {
		[ANON_SHINFO_PAGE]	= "shared_info",
		[ANON_CLOCK_PAGE]	= "kvmclock",
		[ANON_RUNSTATE_PAGE]	= "runstate",
	};
	struct pvclock_vcpu_time_info *clock;
	int ready[2], go[2], status, page, ret;
	uint64_t entry_time;
	uint32_t version;
	bool ok = true;
	pid_t pid;
	char c = 0;

	clock = (void *)anon_page(t, ANON_CLOCK_PAGE);
	set_shinfo_gpa(t->vm, ANON_GPA + ANON_SHINFO_PAGE * t->page_size);
	vcpu_set_msr(t->vcpu, MSR_KVM_SYSTEM_TIME_NEW,
		     (ANON_GPA + ANON_CLOCK_PAGE * t->page_size) |
		     KVM_MSR_ENABLED);
	if (t->runstate) {
		struct kvm_xen_vcpu_attr rs = {
			.type = KVM_XEN_VCPU_ATTR_TYPE_RUNSTATE_ADDR,
			.u.gpa = ANON_GPA + ANON_RUNSTATE_PAGE * t->page_size,
		};

		vcpu_ioctl(t->vcpu, KVM_XEN_VCPU_SET_ATTR, &rs);
	}

	/* Every cache valid, and each page written once. */
	prime(t, anon_page(t, ANON_SHINFO_PAGE));
	run_vcpu(t);
	version = READ_ONCE(clock->version);
	entry_time = runstate_entry_time(t);
	TEST_ASSERT(version, "kvmclock was not written");
	TEST_ASSERT(!t->runstate || entry_time, "runstate was not written");

	TEST_ASSERT(!pipe(ready) && !pipe(go), "pipe failed");
	pid = fork();
	TEST_ASSERT(pid >= 0, "fork failed: %s", strerror(errno));
	if (!pid)
		fork_child(t, ready[1], go[0]);
	TEST_ASSERT(read(ready[0], &c, 1) == 1, "the child did not start");

	ret = evtchn_send(t->vm, t->vcpu);
	request_clock_update(t);
	run_vcpu(t);

	TEST_ASSERT(write(go[1], &c, 1) == 1, "the child is gone");
	TEST_ASSERT(waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
		    !(WEXITSTATUS(status) & 0x80), "the child failed");
	for (page = 0; page < ANON_PAGES; page++) {
		if (WEXITSTATUS(status) & (1 << page)) {
			ksft_print_msg("fork_cow: KVM wrote the child's copy of the %s page\n",
				       names[page]);
			ok = false;
		}
	}

	/* And the parent's own pages got the writes. */
	if (ret || !port_pending(anon_page(t, ANON_SHINFO_PAGE))) {
		ksft_print_msg("fork_cow: send returned %s, the parent's page %s\n",
			       ret ? strerror(ret) : "success",
			       ret ? "untouched" : "not written");
		ok = false;
	}
	if (READ_ONCE(clock->version) == version) {
		ksft_print_msg("fork_cow: kvmclock not updated in the parent\n");
		ok = false;
	}
	if (t->runstate && runstate_entry_time(t) == entry_time) {
		ksft_print_msg("fork_cow: runstate not updated in the parent\n");
		ok = false;
	}
	clear_port(anon_page(t, ANON_SHINFO_PAGE));
	close(ready[0]);
	close(ready[1]);
	close(go[0]);
	close(go[1]);
	ksft_test_result(ok, "fork_cow\n");
}

int main(int argc, char *argv[])
{
	struct pfncache_test t = {};
	int xen_caps;

	xen_caps = kvm_check_cap(KVM_CAP_XEN_HVM);
	TEST_REQUIRE(xen_caps & KVM_XEN_HVM_CONFIG_SHARED_INFO);
	TEST_REQUIRE(xen_caps & KVM_XEN_HVM_CONFIG_EVTCHN_SEND);

	ksft_print_header();
	ksft_set_plan(7);
	print_pfncache_policy();

	t.runstate = xen_caps & KVM_XEN_HVM_CONFIG_RUNSTATE;
	setup(&t);
	test_mprotect_ro(&t);
	test_madv_dontneed(&t);
	test_munmap(&t);
	test_memslot_remap(&t);
	test_mremap(&t);
	test_soft_dirty(&t);
	/* Last: under range_only it leaves the caches on a shared page. */
	test_fork_cow(&t);

	print_pfncache_stats(t.vm);

	kvm_vm_free(t.vm);
	ksft_finished();
}
