// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfncache_stress_test: gfn_to_pfn cache invalidation under concurrency,
 * and what an MMU notifier event costs when the VM has many caches.
 *
 * Default mode: a vCPU runs, a sender thread sends Xen event channel
 * notifications through the shared_info cache as fast as it can, a noise
 * thread changes the protection of a page outside guest memory, and the
 * main thread mutates the memfd page behind the cache: mprotect(), munmap(),
 * mremap(), MADV_DONTNEED, clear_refs and memslot delete/re-add, in rounds.
 * The sender tags each send with the phase it started in, so every send is
 * checked against the mapping that was in place for its whole duration:
 *  - a send that started while the memslot had no writable mapping of the
 *    page must fail and must not reach the page (seen through an alias
 *    mapping of the memfd that is never changed);
 *  - once a mapping is back, a send that succeeded must be in the page, and
 *    after clear_refs it must have made the page soft-dirty;
 *  - no send may take longer than SEND_TIMEOUT_MS (no livelock), and one
 *    that has not returned JOIN_TIMEOUT_S after the last round fails the
 *    test there, with the stats, rather than at the runner's timeout,
 *    which loses the test's output.
 * It prints the sends by outcome, the slowest send and the per-VM
 * pfncache stats, i.e. the invalidations by hook and the refresh retries
 * and waits.
 *
 * Before that, with only the noise thread running, it refreshes a cache
 * over and over: invalidations of memory other than the cache's must make
 * a refresh neither retry nor wait (skipped on kernels without the
 * pfncache_refresh_waits stat, where any invalidation in progress makes a
 * refresh retry).
 *
 * -c mode measures instead of testing: the cost of mprotect() of a page
 * outside guest memory and of one inside it, without and then with many
 * active caches (Xen vcpu_info and vcpu_time_info and the kvmclock page of
 * -v vCPUs). It runs on kernels without the series too, to compare, and
 * reports itself as skipped: a measurement passes or fails nothing.
 */
#define _GNU_SOURCE /* memfd_create(), mremap(), pthread_timedjoin_np() */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <asm/kvm_para.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "pfncache_test.h"

#define SHMEM_SLOT		10
#define SHMEM_GPA		0xc0000000ULL
#define SHMEM_PAGES		3
#define SHINFO_PAGE		0
#define VCPU_INFO_PAGE		1
#define VCPU_INFO_PAGE2		2

#define SEND_TIMEOUT_MS		5000
#define JOIN_TIMEOUT_S		30
#define DEFAULT_ROUNDS		20
#define UNRELATED_REFRESHES	2000
#define NR_EXCEPTIONS		32

/* What the memslot maps at the shared_info gfn while a send runs. */
enum phase {
	PHASE_RW,		/* the page, writable */
	PHASE_NO_WRITE,		/* read-only, unmapped, moved away or no slot */
	PHASE_SOFT_DIRTY,	/* the page, writable, soft-dirty cleared */
	PHASE_CHANGING,		/* a mutation is running: nothing to check */
};

struct stress {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	size_t page_size;
	int memfd;
	/* The vCPU's stats, opened before KVM_RUN holds vcpu->mutex. */
	int vcpu_stats_fd;
	struct kvm_stats_header vcpu_stats_header;
	struct kvm_stats_desc *vcpu_stats_desc;
	uint8_t *shmem;
	uint8_t *alias;
	uint8_t *noise;		/* outside guest memory */
	uint8_t *spare;		/* mremap() target */

	/* Written by the main thread, read by the others. */
	int phase;
	unsigned int epoch;	/* bumped at every mutation */
	bool stop;
	bool dump_vcpu;		/* print the vCPU's state at its next exit */

	/* Written by the noise thread. */
	unsigned long noise_ops;

	/* Written by the sender. */
	unsigned long sends_ok, sends_efault, sends_other;
	unsigned long violations;
	uint64_t slowest_ns;
	unsigned int ok_epoch;	/* epoch of the last send that succeeded */
	char violation[160];
};

static void guest_code(void)
{
	for (;;)
		GUEST_SYNC(0);
}

/*
 * The guest takes no exception. Should it take one, report it rather than
 * triple fault: the shutdown exit resets the vCPU, which loses its state.
 */
static void guest_exception(struct ex_regs *regs)
{
	uint64_t cr2;

	asm volatile("mov %%cr2, %0" : "=r"(cr2));
	GUEST_ASSERT_4(false, regs->vector, regs->error_code, regs->rip, cr2);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void set_vcpu_gpa(struct kvm_vcpu *vcpu, uint16_t type, uint64_t gpa)
{
	struct kvm_xen_vcpu_attr a = { .type = type, .u.gpa = gpa };

	vcpu_ioctl(vcpu, KVM_XEN_VCPU_SET_ATTR, &a);
}

/* SIGUSR1 only interrupts KVM_RUN: see dump_vcpu_state(). */
static void sigusr1_handler(int sig)
{
}

/*
 * Where a vCPU that does not come back to userspace is: its registers and
 * the event it is delivering. KVM_RUN returns -EINTR for a signal only
 * between two entries into the guest, so this shows a vCPU that exits to
 * KVM and enters the guest again and again, not one that stays in it.
 */
static void dump_vcpu_state(struct stress *s)
{
	struct kvm_vcpu_events events;
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	vcpu_regs_get(s->vcpu, &regs);
	vcpu_sregs_get(s->vcpu, &sregs);
	vcpu_events_get(s->vcpu, &events);
	ksft_print_msg("vCPU: rip 0x%llx rsp 0x%llx rflags 0x%llx\n",
		       regs.rip, regs.rsp, regs.rflags);
	ksft_print_msg("vCPU: cr0 0x%llx cr2 0x%llx cr3 0x%llx cr4 0x%llx\n",
		       sregs.cr0, sregs.cr2, sregs.cr3, sregs.cr4);
	ksft_print_msg("vCPU: exception injected %u pending %u nr %u error 0x%x%s\n",
		       events.exception.injected, events.exception.pending,
		       events.exception.nr, events.exception.error_code,
		       events.exception.has_error_code ? "" : " (none)");
	ksft_print_msg("vCPU: interrupt injected %u nr %u, nmi injected %u pending %u\n",
		       events.interrupt.injected, events.interrupt.nr,
		       events.nmi.injected, events.nmi.pending);
}

static void *vcpu_thread(void *arg)
{
	struct stress *s = arg;
	struct ucall uc;

	while (!READ_ONCE(s->stop)) {
		struct kvm_regs regs;	/* for an unexpected exit */

		if (__vcpu_run(s->vcpu) < 0) {
			TEST_ASSERT(errno == EINTR, KVM_IOCTL_ERROR(KVM_RUN, -1));
			if (READ_ONCE(s->dump_vcpu)) {
				dump_vcpu_state(s);
				return NULL;
			}
			continue;
		}
		switch (get_ucall(s->vcpu, &uc)) {
		case UCALL_SYNC:
			continue;
		case UCALL_UNHANDLED:
			TEST_FAIL("unexpected vector %lu in the guest, phase %d",
				  (unsigned long)uc.args[0],
				  __atomic_load_n(&s->phase, __ATOMIC_ACQUIRE));
			break;
		case UCALL_ABORT:
			ksft_print_msg("guest exception in phase %d\n",
				       __atomic_load_n(&s->phase, __ATOMIC_ACQUIRE));
			REPORT_GUEST_ASSERT_4(uc, "vector %lu err 0x%lx rip 0x%lx cr2 0x%lx");
			break;
		default:
			vcpu_regs_get(s->vcpu, &regs);
			TEST_FAIL("unexpected exit %u from the guest at rip 0x%llx, phase %d",
				  s->vcpu->run->exit_reason, regs.rip,
				  __atomic_load_n(&s->phase, __ATOMIC_ACQUIRE));
		}
	}
	return NULL;
}

static void *noise_thread(void *arg)
{
	struct stress *s = arg;
	int prot = PROT_READ;

	while (!READ_ONCE(s->stop)) {
		TEST_ASSERT(!mprotect(s->noise, s->page_size, prot),
			    "noise mprotect failed");
		/* Keep the PTE present, so that every mprotect() notifies. */
		if (prot & PROT_WRITE)
			WRITE_ONCE(*s->noise, 1);
		prot ^= PROT_WRITE;
		__atomic_fetch_add(&s->noise_ops, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void *sender_thread(void *arg)
{
	struct stress *s = arg;

	while (!READ_ONCE(s->stop)) {
		int phase = __atomic_load_n(&s->phase, __ATOMIC_ACQUIRE);
		unsigned int epoch = __atomic_load_n(&s->epoch, __ATOMIC_ACQUIRE);
		uint64_t t0 = now_ns(), dt;
		int ret = evtchn_send(s->vm, s->vcpu);

		dt = now_ns() - t0;
		if (dt > s->slowest_ns)
			s->slowest_ns = dt;

		/* The mapping changed while this send ran: nothing to check. */
		if (phase == PHASE_CHANGING ||
		    __atomic_load_n(&s->epoch, __ATOMIC_ACQUIRE) != epoch)
			continue;

		if (!ret) {
			s->sends_ok++;
			if (phase == PHASE_NO_WRITE && !s->violations++)
				snprintf(s->violation, sizeof(s->violation),
					 "a send succeeded with no writable mapping (epoch %u)",
					 epoch);
			__atomic_store_n(&s->ok_epoch, epoch, __ATOMIC_RELEASE);
		} else if (ret == EFAULT) {
			s->sends_efault++;
		} else {
			s->sends_other++;
		}
	}
	return NULL;
}

static uint8_t *shinfo(struct stress *s)
{
	return s->shmem + SHINFO_PAGE * s->page_size;
}

static uint8_t *shinfo_alias(struct stress *s)
{
	return s->alias + SHINFO_PAGE * s->page_size;
}

/* Publish a new mapping state; sends from now on are checked against it. */
static void enter(struct stress *s, int phase)
{
	__atomic_store_n(&s->phase, phase, __ATOMIC_RELEASE);
	__atomic_fetch_add(&s->epoch, 1, __ATOMIC_ACQ_REL);
}

/* A mutation starts: sends from now until the next enter() are not checked. */
static void change(struct stress *s)
{
	enter(s, PHASE_CHANGING);
}

/* Wait until a send that started in the current epoch succeeded. */
static bool wait_for_send(struct stress *s, const char *what)
{
	unsigned int epoch = __atomic_load_n(&s->epoch, __ATOMIC_ACQUIRE);
	uint64_t deadline = now_ns() + SEND_TIMEOUT_MS * 1000000ULL;

	while (__atomic_load_n(&s->ok_epoch, __ATOMIC_ACQUIRE) != epoch) {
		if (now_ns() > deadline) {
			ksft_print_msg("%s: no send succeeded within %d ms\n",
				       what, SEND_TIMEOUT_MS);
			return false;
		}
		usleep(100);
	}
	return true;
}

/* No writable mapping: let sends run, and none may reach the page. */
static bool hold_no_write(struct stress *s, const char *what)
{
	enter(s, PHASE_NO_WRITE);
	clear_port(shinfo_alias(s));
	usleep(2000);
	if (port_pending(shinfo_alias(s))) {
		ksft_print_msg("%s: the page was written with no writable mapping\n",
			       what);
		return false;
	}
	return true;
}

/* The page is mapped again: a send that succeeds from now on lands in it. */
static bool back_to_rw(struct stress *s, const char *what)
{
	/*
	 * Clear first: a send of the new epoch starts after enter(), so after
	 * the clear, and its bit cannot be cleared by it.
	 */
	clear_port(shinfo_alias(s));
	enter(s, PHASE_RW);
	if (!wait_for_send(s, what))
		return false;
	if (!port_pending(shinfo_alias(s))) {
		ksft_print_msg("%s: a send succeeded but the page was not written\n",
			       what);
		return false;
	}
	return true;
}

static bool round_of_mutations(struct stress *s)
{
	size_t ps = s->page_size;
	bool ok = true;
	void *p;

	change(s);
	TEST_ASSERT(!mprotect(shinfo(s), ps, PROT_READ), "mprotect failed");
	ok &= hold_no_write(s, "mprotect(PROT_READ)");
	change(s);
	TEST_ASSERT(!mprotect(shinfo(s), ps, PROT_READ | PROT_WRITE),
		    "mprotect failed");
	ok &= back_to_rw(s, "mprotect(PROT_WRITE)");

	change(s);
	TEST_ASSERT(!munmap(shinfo(s), ps), "munmap failed");
	ok &= hold_no_write(s, "munmap");
	change(s);
	p = mmap(shinfo(s), ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		 s->memfd, SHINFO_PAGE * ps);
	TEST_ASSERT(p == shinfo(s), "mmap failed");
	ok &= back_to_rw(s, "mmap after munmap");

	change(s);
	p = mremap(shinfo(s), ps, ps, MREMAP_MAYMOVE | MREMAP_FIXED, s->spare);
	TEST_ASSERT(p == s->spare, "mremap failed");
	ok &= hold_no_write(s, "mremap");
	change(s);
	p = mremap(s->spare, ps, ps, MREMAP_MAYMOVE | MREMAP_FIXED, shinfo(s));
	TEST_ASSERT(p == shinfo(s), "mremap back failed");
	ok &= back_to_rw(s, "mremap back");

	/* The memfd page stays; the new mapping must be used. */
	change(s);
	TEST_ASSERT(!madvise(shinfo(s), ps, MADV_DONTNEED), "madvise failed");
	ok &= back_to_rw(s, "MADV_DONTNEED");

	change(s);
	vm_set_user_memory_region(s->vm, SHMEM_SLOT, 0, SHMEM_GPA, 0, NULL);
	ok &= hold_no_write(s, "memslot deleted");
	change(s);
	vm_set_user_memory_region(s->vm, SHMEM_SLOT, 0, SHMEM_GPA,
				  SHMEM_PAGES * ps, s->shmem);
	ok &= back_to_rw(s, "memslot re-added");

	change(s);
	clear_soft_dirty();
	enter(s, PHASE_SOFT_DIRTY);
	if (!(pagemap_entry(shinfo(s), ps) & PM_SOFT_DIRTY)) {
		if (!wait_for_send(s, "clear_refs"))
			return false;
		if (!(pagemap_entry(shinfo(s), ps) & PM_SOFT_DIRTY)) {
			ksft_print_msg("clear_refs: written, not soft-dirty\n");
			ok = false;
		}
	}
	enter(s, PHASE_RW);
	return ok;
}

/* Whether kernel.numa_balancing is on (absent without CONFIG_NUMA_BALANCING). */
static bool numa_balancing_on(void)
{
	FILE *f = fopen("/proc/sys/kernel/numa_balancing", "r");
	int on = 0;

	if (!f)
		return false;
	if (fscanf(f, "%d", &on) != 1)
		on = 0;
	fclose(f);
	return on;
}

/*
 * Refresh the vcpu_info cache, alternating between two pages so that every
 * refresh looks up a pfn, while the noise thread invalidates another page.
 */
static void check_unrelated(struct stress *s)
{
	long retries = pfncache_stat(s->vm, "pfncache_refresh_retries");
	long waits = pfncache_stat(s->vm, "pfncache_refresh_waits");
	unsigned long noise = READ_ONCE(s->noise_ops);
	bool has_waits = waits >= 0;
	int i;

	for (i = 0; i < UNRELATED_REFRESHES; i++)
		set_vcpu_gpa(s->vcpu, KVM_XEN_VCPU_ATTR_TYPE_VCPU_INFO,
			     SHMEM_GPA + (i & 1 ? VCPU_INFO_PAGE2 : VCPU_INFO_PAGE) *
			     s->page_size);

	retries = pfncache_stat(s->vm, "pfncache_refresh_retries") - retries;
	waits = pfncache_stat(s->vm, "pfncache_refresh_waits") - waits;
	noise = READ_ONCE(s->noise_ops) - noise;
	ksft_print_msg("%d refreshes, %lu unrelated mprotect() calls: %ld retries, %ld waits\n",
		       UNRELATED_REFRESHES, noise, retries, waits);

	if (!has_waits) {
		ksft_test_result_skip("unrelated_invalidations: no pfncache_refresh_waits stat\n");
		return;
	}
	/*
	 * With NUMA balancing, task_numa_work() changes the protection of
	 * guest memory too, the caches' pages included, at any time: the
	 * test then cannot tell which invalidations it caused.
	 */
	if (numa_balancing_on()) {
		ksft_test_result_skip("unrelated_invalidations: NUMA balancing is on\n");
		return;
	}
	ksft_test_result(!retries && !waits && noise,
			 "unrelated_invalidations\n");
}

/* The first line of @path into @buf, or an empty string. */
static void read_first_line(const char *path, char *buf, int size)
{
	FILE *f = fopen(path, "r");

	buf[0] = '\0';
	if (f) {
		if (!fgets(buf, size, f))
			buf[0] = '\0';
		fclose(f);
	}
}

/* Print thread @tid's kernel stack, where shown (root, STACKTRACE=y). */
static void print_stack(const char *tid)
{
	char path[PATH_MAX], line[128];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%s/stack", tid);
	f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		ksft_print_msg("thread %s:   %s", tid, line);
	fclose(f);
}

/* Print each thread's state, wait channel and stack, from /proc/self/task. */
static void print_threads(void)
{
	char path[PATH_MAX], stat[256], wchan[64];
	struct dirent *e;
	DIR *d = opendir("/proc/self/task");
	const char *comm_end;

	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/stat", e->d_name);
		read_first_line(path, stat, sizeof(stat));
		snprintf(path, sizeof(path), "/proc/self/task/%s/wchan", e->d_name);
		read_first_line(path, wchan, sizeof(wchan));
		/* The state is the field after "(comm)". */
		comm_end = strrchr(stat, ')');
		ksft_print_msg("thread %s: state %c, wchan %s\n", e->d_name,
			       comm_end && comm_end[1] ? comm_end[2] : '?',
			       wchan[0] ? wchan : "-");
		print_stack(e->d_name);
	}
	if (d)
		closedir(d);
}

static const char * const vcpu_stat_names[] = {
	"exits", "io_exits", "pf_taken", "pf_fixed", "pf_spurious",
	"pf_emulate", "halt_exits", "insn_emulation",
};

/*
 * Open the vCPU's stats file and read its header and descriptors, once:
 * read_stats_header() reads at the file position, which it advances.
 */
static void open_vcpu_stats(struct stress *s)
{
	s->vcpu_stats_fd = __vcpu_ioctl(s->vcpu, KVM_GET_STATS_FD, NULL);
	TEST_ASSERT(s->vcpu_stats_fd >= 0, "KVM_GET_STATS_FD failed: %s",
		    strerror(errno));
	read_stats_header(s->vcpu_stats_fd, &s->vcpu_stats_header);
	s->vcpu_stats_desc = read_stats_descriptors(s->vcpu_stats_fd,
						    &s->vcpu_stats_header);
}

/* The vCPU stats above; reading them does not lock the vCPU. */
static void read_vcpu_stats(struct stress *s, uint64_t *v)
{
	struct kvm_stats_header *header = &s->vcpu_stats_header;
	struct kvm_stats_desc *desc;
	int i, j;

	for (j = 0; j < ARRAY_SIZE(vcpu_stat_names); j++) {
		v[j] = 0;
		for (i = 0; i < header->num_desc; i++) {
			desc = get_stats_descriptor(s->vcpu_stats_desc, i, header);
			if (!strcmp(desc->name, vcpu_stat_names[j])) {
				read_stat_data(s->vcpu_stats_fd, header, desc,
					       &v[j], 1);
				break;
			}
		}
	}
}

/*
 * What a vCPU stuck in KVM_RUN does: the growth of its exit and page fault
 * counters over one second. None means it is in the guest.
 */
static void print_vcpu_progress(struct stress *s)
{
	uint64_t a[ARRAY_SIZE(vcpu_stat_names)], b[ARRAY_SIZE(vcpu_stat_names)];
	int j;

	read_vcpu_stats(s, a);
	sleep(1);
	read_vcpu_stats(s, b);
	for (j = 0; j < ARRAY_SIZE(vcpu_stat_names); j++)
		ksft_print_msg("vCPU %s: %lu, +%lu in 1 s\n", vcpu_stat_names[j],
			       (unsigned long)b[j], (unsigned long)(b[j] - a[j]));
}

/* Join @tid within @seconds: 0 if it ended, ETIMEDOUT if not. */
static int join_within(pthread_t tid, int seconds)
{
	struct timespec deadline;
	int r;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += seconds;
	r = pthread_timedjoin_np(tid, NULL, &deadline);
	TEST_ASSERT(!r || r == ETIMEDOUT, "pthread_timedjoin_np failed: %d", r);
	return r;
}

/*
 * Join @tid, or fail the test if it does not end within JOIN_TIMEOUT_S: a
 * thread stuck in an ioctl is the livelock the test is looking for. exit()
 * kills it, and KVM's waits for invalidations are killable.
 */
static void join_or_fail(struct stress *s, pthread_t tid, const char *what,
			 bool is_vcpu)
{
	if (!join_within(tid, JOIN_TIMEOUT_S))
		return;
	ksft_print_msg("the %s thread is still in the kernel %d s after the last round\n",
		       what, JOIN_TIMEOUT_S);
	ksft_print_msg("sends ok=%lu, phase %d\n", READ_ONCE(s->sends_ok),
		       READ_ONCE(s->phase));
	print_pfncache_stats(s->vm);
	print_threads();
	if (is_vcpu) {
		print_vcpu_progress(s);
		/* Interrupt KVM_RUN; the thread prints the vCPU's state. */
		WRITE_ONCE(s->dump_vcpu, true);
		pthread_kill(tid, SIGUSR1);
		if (join_within(tid, 5))
			ksft_print_msg("KVM_RUN did not return for a signal within 5 s\n");
	}
	ksft_test_result_fail("stress\n");
	ksft_exit_fail();
}

static void run_stress(int rounds)
{
	pthread_t vcpu_tid, sender_tid, noise_tid;
	struct stress s = {};
	size_t size;
	bool ok = true;
	int i;

	s.page_size = getpagesize();
	size = SHMEM_PAGES * s.page_size;
	s.vm = vm_create_with_one_vcpu(&s.vcpu, guest_code);
	vm_init_descriptor_tables(s.vm);
	vcpu_init_descriptor_tables(s.vcpu);
	for (i = 0; i < NR_EXCEPTIONS; i++)
		vm_install_exception_handler(s.vm, i, guest_exception);
	open_vcpu_stats(&s);
	/* No SA_RESTART: the signal must make KVM_RUN return. */
	TEST_ASSERT(!sigaction(SIGUSR1, &(struct sigaction){
				.sa_handler = sigusr1_handler }, NULL),
		    "sigaction failed");

	s.memfd = memfd_create("pfncache_stress_test", 0);
	TEST_ASSERT(s.memfd >= 0, "memfd_create failed");
	TEST_ASSERT(!ftruncate(s.memfd, size), "ftruncate failed");
	s.shmem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
		       s.memfd, 0);
	s.alias = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
		       s.memfd, 0);
	s.noise = mmap(NULL, s.page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	s.spare = mmap(NULL, s.page_size, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(s.shmem != MAP_FAILED && s.alias != MAP_FAILED &&
		    s.noise != MAP_FAILED && s.spare != MAP_FAILED,
		    "mmap failed");
	WRITE_ONCE(*s.noise, 1);

	vm_set_user_memory_region(s.vm, SHMEM_SLOT, 0, SHMEM_GPA, size,
				  s.shmem);
	xen_evtchn_setup(s.vm, SHMEM_GPA + SHINFO_PAGE * s.page_size);
	set_vcpu_gpa(s.vcpu, KVM_XEN_VCPU_ATTR_TYPE_VCPU_INFO,
		     SHMEM_GPA + VCPU_INFO_PAGE * s.page_size);

	pthread_create(&noise_tid, NULL, noise_thread, &s);
	check_unrelated(&s);
	set_vcpu_gpa(s.vcpu, KVM_XEN_VCPU_ATTR_TYPE_VCPU_INFO,
		     SHMEM_GPA + VCPU_INFO_PAGE * s.page_size);

	pthread_create(&vcpu_tid, NULL, vcpu_thread, &s);
	pthread_create(&sender_tid, NULL, sender_thread, &s);

	ok = back_to_rw(&s, "start");
	for (i = 0; i < rounds && ok; i++)
		ok &= round_of_mutations(&s);

	WRITE_ONCE(s.stop, true);
	join_or_fail(&s, sender_tid, "sender", false);
	join_or_fail(&s, noise_tid, "noise", false);
	/* The guest exits to userspace at every GUEST_SYNC. */
	join_or_fail(&s, vcpu_tid, "vCPU", true);

	ksft_print_msg("%d rounds: sends ok=%lu efault=%lu other=%lu, slowest %lu us\n",
		       i, s.sends_ok, s.sends_efault, s.sends_other,
		       (unsigned long)(s.slowest_ns / 1000));
	print_pfncache_stats(s.vm);
	if (s.violations) {
		ksft_print_msg("%lu violations, the first: %s\n", s.violations,
			       s.violation);
		ok = false;
	}
	if (s.sends_other) {
		ksft_print_msg("%lu sends failed with an error other than EFAULT\n",
			       s.sends_other);
		ok = false;
	}
	if (s.slowest_ns > SEND_TIMEOUT_MS * 1000000ULL) {
		ksft_print_msg("a send took %lu ms\n",
			       (unsigned long)(s.slowest_ns / 1000000));
		ok = false;
	}
	free(s.vcpu_stats_desc);
	close(s.vcpu_stats_fd);
	kvm_vm_free(s.vm);
	ksft_test_result(ok, "stress\n");
}

/* ns per mprotect() of @page. */
static uint64_t mprotect_cost(uint8_t *page, size_t ps, int iterations)
{
	uint64_t t0;
	int i;

	WRITE_ONCE(*page, 1);
	t0 = now_ns();
	for (i = 0; i < iterations; i++) {
		/* A present PTE, so that mprotect() notifies every time. */
		TEST_ASSERT(!mprotect(page, ps, i & 1 ? PROT_READ | PROT_WRITE :
							PROT_READ),
			    "mprotect failed");
	}
	return (now_ns() - t0) / iterations;
}

static void measure_notifier_cost(int nr_vcpus, int iterations)
{
	size_t ps = getpagesize();
	uint64_t without, with, guest_without, guest_with;
	uint8_t *page, *guest_page;
	struct kvm_vcpu **vcpus;
	struct kvm_vm *vm;
	int i, caches;

	page = mmap(NULL, ps, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(page != MAP_FAILED, "mmap failed");
	vcpus = calloc(nr_vcpus, sizeof(*vcpus));
	TEST_ASSERT(vcpus, "calloc failed");

	vm = vm_create_with_vcpus(nr_vcpus, guest_code, vcpus);
	/*
	 * One page per vCPU past the shared_info page, and a last one that is
	 * guest memory but no cache's.
	 */
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, SHMEM_GPA,
				    SHMEM_SLOT, 2 + nr_vcpus, 0);
	guest_page = addr_gpa2hva(vm, SHMEM_GPA + (1 + nr_vcpus) * ps);

	/* The same VM, before any cache is active. */
	mprotect_cost(page, ps, iterations / 10);
	without = mprotect_cost(page, ps, iterations);
	mprotect_cost(guest_page, ps, iterations / 10);
	guest_without = mprotect_cost(guest_page, ps, iterations);

	xen_evtchn_setup(vm, SHMEM_GPA);
	caches = 1;
	for (i = 0; i < nr_vcpus; i++) {
		uint64_t gpa = SHMEM_GPA + (1 + i) * ps;

		set_vcpu_gpa(vcpus[i], KVM_XEN_VCPU_ATTR_TYPE_VCPU_INFO, gpa);
		set_vcpu_gpa(vcpus[i], KVM_XEN_VCPU_ATTR_TYPE_VCPU_TIME_INFO,
			     gpa + 64);
		/* kvmclock: the enable bit activates the vCPU's pv_time cache. */
		vcpu_set_msr(vcpus[i], MSR_KVM_SYSTEM_TIME_NEW,
			     (gpa + 128) | KVM_MSR_ENABLED);
		caches += 3;
	}

	mprotect_cost(page, ps, iterations / 10);
	with = mprotect_cost(page, ps, iterations);
	mprotect_cost(guest_page, ps, iterations / 10);
	guest_with = mprotect_cost(guest_page, ps, iterations);

	ksft_print_msg("notifier cost: mprotect() outside guest memory, %d calls\n",
		       iterations);
	ksft_print_msg("notifier cost: %lu ns without caches, %lu ns with %d caches\n",
		       (unsigned long)without, (unsigned long)with, caches);
	ksft_print_msg("notifier cost: mprotect() of guest memory, %d calls\n",
		       iterations);
	ksft_print_msg("notifier cost: %lu ns without caches, %lu ns with %d caches, inside\n",
		       (unsigned long)guest_without, (unsigned long)guest_with,
		       caches);
	print_pfncache_stats(vm);
	kvm_vm_free(vm);
	free(vcpus);
	munmap(page, ps);
	/* A measurement passes or fails nothing. */
	ksft_test_result_skip("notifier_cost: a measurement, not a test\n");
}

static int parse_positive(const char *what, const char *arg)
{
	char *end;
	long v = strtol(arg, &end, 0);

	TEST_ASSERT(*arg && !*end && v > 0 && v <= INT_MAX,
		    "-%s wants a positive number, not '%s'", what, arg);
	return v;
}

static void help(const char *name)
{
	printf("usage: %s [-r rounds] [-c [-v vcpus] [-i iterations]]\n"
	       " -r: rounds of mutations in the stress test (default %d)\n"
	       " -c: measure the notifier cost instead of testing\n"
	       " -v: vCPUs for -c, three caches each (default 64)\n"
	       " -i: mprotect() calls per measurement for -c (default 20000)\n",
	       name, DEFAULT_ROUNDS);
	exit(KSFT_SKIP);
}

int main(int argc, char *argv[])
{
	int rounds = DEFAULT_ROUNDS, nr_vcpus = 64, iterations = 20000;
	bool cost = false;
	int xen_caps, opt;

	while ((opt = getopt(argc, argv, "r:cv:i:h")) != -1) {
		switch (opt) {
		case 'r':
			rounds = parse_positive("r", optarg);
			break;
		case 'c':
			cost = true;
			break;
		case 'v':
			nr_vcpus = parse_positive("v", optarg);
			break;
		case 'i':
			iterations = parse_positive("i", optarg);
			break;
		default:
			help(argv[0]);
		}
	}

	xen_caps = kvm_check_cap(KVM_CAP_XEN_HVM);
	TEST_REQUIRE(xen_caps & KVM_XEN_HVM_CONFIG_SHARED_INFO);
	TEST_REQUIRE(xen_caps & KVM_XEN_HVM_CONFIG_EVTCHN_SEND);

	ksft_print_header();
	ksft_set_plan(cost ? 1 : 2);
	print_pfncache_policy();

	if (cost)
		measure_notifier_cost(nr_vcpus, iterations);
	else
		run_stress(rounds);

	ksft_finished();
}
