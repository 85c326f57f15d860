// SPDX-License-Identifier: GPL-2.0-only
/*
 * KUnit tests of the hva-range walker, __kvm_handle_hva_range(), over memslots
 * built by hand: which memslots and gfn ranges the handlers see for an hva
 * range, and when on_first_slot() runs.
 */

#include <kunit/test.h>
#include <linux/interval_tree.h>
#include <linux/kvm_host.h>
#include <linux/srcu.h>
#include <linux/vmalloc.h>

#include "kvm_mm.h"

#define MAX_CALLS	8

struct walker_call {
	const struct kvm_memory_slot *slot;
	gfn_t start;
	gfn_t end;
};

/* A VM with nothing but memslots, and what the callbacks saw. */
struct walker_vm {
	struct kvm kvm;
	struct kvm_memory_slot slots[4];
	int nr_slots;
	struct walker_call calls[MAX_CALLS];
	int nr_calls;
	int first_slot_calls;
	bool handler_ret;
};

static struct walker_vm *to_walker_vm(struct kvm *kvm)
{
	return container_of(kvm, struct walker_vm, kvm);
}

static bool record_handler(struct kvm *kvm, struct kvm_gfn_range *range)
{
	struct walker_vm *vm = to_walker_vm(kvm);

	if (vm->nr_calls < MAX_CALLS)
		vm->calls[vm->nr_calls] = (struct walker_call) {
			.slot = range->slot,
			.start = range->start,
			.end = range->end,
		};
	vm->nr_calls++;
	return vm->handler_ret;
}

static void record_first_slot(struct kvm *kvm,
			      const struct kvm_hva_range *range)
{
	to_walker_vm(kvm)->first_slot_calls++;
}

static int walker_test_init(struct kunit *test)
{
	struct walker_vm *vm;
	int i;

	/* struct kvm is too large for the stack and for kmalloc() on x86. */
	vm = vzalloc(sizeof(*vm));
	KUNIT_ASSERT_NOT_NULL(test, vm);
	KUNIT_ASSERT_EQ(test, init_srcu_struct(&vm->kvm.srcu), 0);
	KVM_MMU_LOCK_INIT(&vm->kvm);

	for (i = 0; i < KVM_ADDRESS_SPACE_NUM; i++) {
		struct kvm_memslots *slots = &vm->kvm.__memslots[i][0];

		slots->hva_tree = RB_ROOT_CACHED;
		slots->node_idx = 0;
		rcu_assign_pointer(vm->kvm.memslots[i], slots);
	}
	test->priv = vm;
	return 0;
}

static void walker_test_exit(struct kunit *test)
{
	struct walker_vm *vm = test->priv;

	cleanup_srcu_struct(&vm->kvm.srcu);
	vfree(vm);
}

/* Add a memslot of @npages pages at @uaddr for gfn @base_gfn in @as_id. */
static struct kvm_memory_slot *add_slot(struct walker_vm *vm, int as_id,
					unsigned long uaddr, gfn_t base_gfn,
					unsigned long npages)
{
	struct kvm_memory_slot *slot = &vm->slots[vm->nr_slots++];
	struct kvm_memslots *slots = &vm->kvm.__memslots[as_id][0];

	slot->as_id = as_id;
	slot->base_gfn = base_gfn;
	slot->npages = npages;
	slot->userspace_addr = uaddr;
	slot->hva_node[0].start = uaddr;
	slot->hva_node[0].last = uaddr + (npages << PAGE_SHIFT) - 1;
	interval_tree_insert(&slot->hva_node[0], &slots->hva_tree);
	return slot;
}

/* Walk [@start, @end) with both callbacks; returns the walker's result. */
static int walk(struct walker_vm *vm, unsigned long start, unsigned long end)
{
	const struct kvm_hva_range range = {
		.start		= start,
		.end		= end,
		.pte		= __pte(0),
		.handler	= record_handler,
		.on_lock	= (void *)kvm_null_fn,
		.on_unlock	= (void *)kvm_null_fn,
		.on_first_slot	= record_first_slot,
		.event		= MMU_NOTIFY_UNMAP,
		.flush_on_ret	= false,
		.may_block	= false,
	};

	vm->nr_calls = 0;
	vm->first_slot_calls = 0;
	return __kvm_handle_hva_range(&vm->kvm, &range);
}

static void expect_call(struct kunit *test, int i,
			const struct kvm_memory_slot *slot, gfn_t start,
			gfn_t end)
{
	struct walker_vm *vm = test->priv;

	KUNIT_ASSERT_LT(test, i, vm->nr_calls);
	KUNIT_EXPECT_PTR_EQ(test, vm->calls[i].slot, slot);
	KUNIT_EXPECT_EQ(test, vm->calls[i].start, start);
	KUNIT_EXPECT_EQ(test, vm->calls[i].end, end);
}

/* The handler ran @nr times, on_first_slot() @first times. */
static void expect_counts(struct kunit *test, int nr, int first)
{
	struct walker_vm *vm = test->priv;

	KUNIT_EXPECT_EQ(test, vm->nr_calls, nr);
	KUNIT_EXPECT_EQ(test, vm->first_slot_calls, first);
}

#define UADDR	0x7f0000000000UL
#define PG(n)	((unsigned long)(n) << PAGE_SHIFT)

/* Page-aligned and unaligned ranges inside one memslot. */
static void walker_one_slot_test(struct kunit *test)
{
	struct walker_vm *vm = test->priv;
	struct kvm_memory_slot *s = add_slot(vm, 0, UADDR, 0x100, 8);

	walk(vm, UADDR + PG(1), UADDR + PG(3));
	expect_counts(test, 1, 1);
	expect_call(test, 0, s, 0x101, 0x103);

	/* Every page that the range touches, even by one byte. */
	walk(vm, UADDR + PG(1) + 0x800, UADDR + PG(3) + 1);
	KUNIT_EXPECT_EQ(test, vm->nr_calls, 1);
	expect_call(test, 0, s, 0x101, 0x104);

	/* The last byte of the slot. */
	walk(vm, UADDR + PG(8) - 1, UADDR + PG(8));
	KUNIT_EXPECT_EQ(test, vm->nr_calls, 1);
	expect_call(test, 0, s, 0x107, 0x108);
}

/* A range that only partly overlaps a memslot is clamped to it. */
static void walker_clamp_test(struct kunit *test)
{
	struct walker_vm *vm = test->priv;
	struct kvm_memory_slot *s = add_slot(vm, 0, UADDR, 0x100, 8);

	walk(vm, UADDR - PG(4), UADDR + PG(2));
	KUNIT_EXPECT_EQ(test, vm->nr_calls, 1);
	expect_call(test, 0, s, 0x100, 0x102);

	walk(vm, UADDR + PG(6), UADDR + PG(100));
	KUNIT_EXPECT_EQ(test, vm->nr_calls, 1);
	expect_call(test, 0, s, 0x106, 0x108);

	/* clear_refs and the OOM reaper invalidate 0..ULONG_MAX. */
	walk(vm, 0, ULONG_MAX);
	KUNIT_EXPECT_EQ(test, vm->nr_calls, 1);
	expect_call(test, 0, s, 0x100, 0x108);
}

/* Ranges that touch no memslot call nothing, on_first_slot() included. */
static void walker_no_slot_test(struct kunit *test)
{
	struct walker_vm *vm = test->priv;

	add_slot(vm, 0, UADDR, 0x100, 8);

	/* The end is exclusive: a range that ends where the slot starts. */
	KUNIT_EXPECT_EQ(test, walk(vm, UADDR - PG(2), UADDR), 0);
	expect_counts(test, 0, 0);

	walk(vm, UADDR + PG(8), UADDR + PG(9));
	expect_counts(test, 0, 0);
}

/*
 * A range over two memslots and the hole between them: one call per slot,
 * in hva order, but on_first_slot() only once.
 */
static void walker_two_slots_test(struct kunit *test)
{
	struct walker_vm *vm = test->priv;
	struct kvm_memory_slot *a, *b;

	a = add_slot(vm, 0, UADDR, 0x100, 4);
	b = add_slot(vm, 0, UADDR + PG(8), 0x40000, 2);

	walk(vm, UADDR + PG(2), UADDR + PG(9));
	expect_counts(test, 2, 1);
	expect_call(test, 0, a, 0x102, 0x104);
	expect_call(test, 1, b, 0x40000, 0x40001);

	/* Only the hole. */
	walk(vm, UADDR + PG(4), UADDR + PG(8));
	expect_counts(test, 0, 0);
}

/* Memslots of every address space (SMM on x86) map the same hvas. */
static void walker_address_spaces_test(struct kunit *test)
{
	struct walker_vm *vm = test->priv;
	struct kvm_memory_slot *s0, *s1;

	if (KVM_ADDRESS_SPACE_NUM < 2)
		kunit_skip(test, "one address space");

	s0 = add_slot(vm, 0, UADDR, 0x100, 4);
	s1 = add_slot(vm, KVM_ADDRESS_SPACE_NUM - 1, UADDR + PG(2), 0x200, 4);

	walk(vm, UADDR + PG(3), UADDR + PG(4));
	expect_counts(test, 2, 1);
	expect_call(test, 0, s0, 0x103, 0x104);
	expect_call(test, 1, s1, 0x201, 0x202);
}

/* The walker returns whether any handler did, and only that. */
static void walker_return_test(struct kunit *test)
{
	struct walker_vm *vm = test->priv;

	add_slot(vm, 0, UADDR, 0x100, 4);
	add_slot(vm, 0, UADDR + PG(4), 0x200, 4);

	vm->handler_ret = false;
	KUNIT_EXPECT_EQ(test, walk(vm, UADDR, UADDR + PG(8)), 0);
	vm->handler_ret = true;
	KUNIT_EXPECT_EQ(test, walk(vm, UADDR, UADDR + PG(8)), 1);
	KUNIT_EXPECT_EQ(test, vm->nr_calls, 2);
}

/*
 * With on_first_slot() alone, as in ->invalidate_range(), the walker stops
 * at the first slot: there is nothing to do under mmu_lock.
 */
static void walker_first_slot_only_test(struct kunit *test)
{
	struct walker_vm *vm = test->priv;
	const struct kvm_hva_range range = {
		.start		= UADDR,
		.end		= UADDR + PG(8),
		.pte		= __pte(0),
		.handler	= (void *)kvm_null_fn,
		.on_lock	= (void *)kvm_null_fn,
		.on_unlock	= (void *)kvm_null_fn,
		.on_first_slot	= record_first_slot,
		.event		= MMU_NOTIFY_UNMAP,
		.flush_on_ret	= false,
		.may_block	= false,
	};

	add_slot(vm, 0, UADDR, 0x100, 4);
	add_slot(vm, 0, UADDR + PG(4), 0x200, 4);

	KUNIT_EXPECT_EQ(test, __kvm_handle_hva_range(&vm->kvm, &range), 0);
	expect_counts(test, 0, 1);
}

static struct kunit_case kvm_mm_walker_test_cases[] = {
	KUNIT_CASE(walker_one_slot_test),
	KUNIT_CASE(walker_clamp_test),
	KUNIT_CASE(walker_no_slot_test),
	KUNIT_CASE(walker_two_slots_test),
	KUNIT_CASE(walker_address_spaces_test),
	KUNIT_CASE(walker_return_test),
	KUNIT_CASE(walker_first_slot_only_test),
	{}
};

static struct kunit_suite kvm_mm_walker_test_suite = {
	.name = "kvm_mm_walker",
	.init = walker_test_init,
	.exit = walker_test_exit,
	.test_cases = kvm_mm_walker_test_cases,
};

kunit_test_suite(kvm_mm_walker_test_suite);
