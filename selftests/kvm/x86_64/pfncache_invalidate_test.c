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
 *  - soft_dirty: after clear_refs, the send must write-fault the page so
 *    that it is soft-dirty again.
 *
 * All must pass whatever kvm.pfncache_inval is, except the test-only
 * "range_only" with mmu_notifier.no_implicit_invalidate_range=1: that is
 * the 2021 RFC behaviour on a kernel without the implicit
 * ->invalidate_range() call, under which mremap and soft_dirty fail.
 * mprotect_ro passes even then: mprotect() flushes through mmu_gather,
 * whose flush calls ->invalidate_range() before mprotect() returns, so for
 * mprotect() the RFC's bug is a window while the call runs, not a state
 * that a test can observe afterwards.
 */
#define _GNU_SOURCE /* memfd_create(), mremap() */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

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

struct pfncache_test {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	size_t page_size;
	int memfd;
	uint8_t *shmem;		/* memslot SHMEM_SLOT */
	uint8_t *alias;		/* the same memfd pages, never changed */
	uint8_t *anon;		/* memslot ANON_SLOT, one anonymous page */
};

static void guest_code(void)
{
	GUEST_DONE();
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
	t->anon = mmap(NULL, t->page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(t->shmem != MAP_FAILED && t->alias != MAP_FAILED &&
		    t->anon != MAP_FAILED, "mmap failed: %s", strerror(errno));

	vm_set_user_memory_region(t->vm, SHMEM_SLOT, 0, SHMEM_GPA, size,
				  t->shmem);
	vm_set_user_memory_region(t->vm, ANON_SLOT, 0, ANON_GPA, t->page_size,
				  t->anon);

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

int main(int argc, char *argv[])
{
	struct pfncache_test t = {};
	int xen_caps;

	xen_caps = kvm_check_cap(KVM_CAP_XEN_HVM);
	TEST_REQUIRE(xen_caps & KVM_XEN_HVM_CONFIG_SHARED_INFO);
	TEST_REQUIRE(xen_caps & KVM_XEN_HVM_CONFIG_EVTCHN_SEND);

	ksft_print_header();
	ksft_set_plan(5);
	print_pfncache_policy();

	setup(&t);
	test_mprotect_ro(&t);
	test_madv_dontneed(&t);
	test_munmap(&t);
	test_mremap(&t);
	test_soft_dirty(&t);

	print_pfncache_stats(t.vm);

	kvm_vm_free(t.vm);
	ksft_finished();
}
