//! Inputs and oracles shared by the tests.

use kvm_mm::Range;

/// The x86 page size the kernel uses.
pub const PAGE_SHIFT: u32 = 12;
pub const PAGE: u64 = 1 << PAGE_SHIFT;

/// Addresses where the range helpers change behaviour: 0, page
/// boundaries, the top of the user address space, and the top of the
/// 64-bit space.
pub const EDGES: [u64; 14] = [
    0,
    1,
    PAGE - 1,
    PAGE,
    PAGE + 1,
    2 * PAGE,
    0x7fff_ffff_f000,
    1 << 47,
    1 << 63,
    u64::MAX - 2 * PAGE,
    u64::MAX - PAGE,
    u64::MAX - PAGE + 1,
    u64::MAX - 1,
    u64::MAX,
];

/// Slot sizes in pages, including ones whose byte size overflows.
pub const NPAGES: [u64; 7] = [0, 1, 2, 512, (1 << 52) - 1, 1 << 52, u64::MAX];

/// Page shifts: 4K, 2M, 1G, the extremes, and shifts that cannot be done.
pub const SHIFTS: [u32; 8] = [0, 1, PAGE_SHIFT, 21, 30, 63, 64, u32::MAX];

/// A 64-bit xorshift generator (Marsaglia, 2003) with a fixed seed, so
/// failures reproduce.
pub struct XorShift64(u64);

impl XorShift64 {
    pub fn new(seed: u64) -> XorShift64 {
        XorShift64(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        let index = usize::try_from(self.below(items.len() as u64))
            .expect("the index is below a usize length");
        items[index]
    }

    /// An address: an edge, an edge give or take a few bytes or pages, a
    /// page-aligned user address, or any 64-bit value.
    pub fn addr(&mut self) -> u64 {
        match self.below(5) {
            0 => self.pick(&EDGES),
            1 => self
                .pick(&EDGES)
                .wrapping_add(self.below(9))
                .wrapping_sub(4),
            2 => self
                .pick(&EDGES)
                .wrapping_add((self.below(9) << PAGE_SHIFT).wrapping_sub(4 * PAGE)),
            3 => (self.next_u64() & 0x7fff_ffff_ffff) & !(PAGE - 1),
            _ => self.next_u64(),
        }
    }

    /// A slot size in pages: small, an edge, or any value.
    pub fn npages(&mut self) -> u64 {
        match self.below(4) {
            0 => self.below(1024),
            1 => self.pick(&NPAGES),
            2 => self.next_u64() >> self.below(64),
            _ => self.next_u64(),
        }
    }

    /// A page shift, usually 12.
    pub fn shift(&mut self) -> u32 {
        match self.below(4) {
            0 | 1 => PAGE_SHIFT,
            2 => self.pick(&SHIFTS),
            _ => u32::try_from(self.below(70)).expect("below 70"),
        }
    }
}

fn to_u64(value: u128) -> Option<u64> {
    u64::try_from(value).ok()
}

/// clamp_to_slot() in 128-bit arithmetic, where nothing overflows.
pub fn clamp_oracle(start: u64, end: u64, uaddr: u64, npages: u64, shift: u32) -> Range {
    if shift >= 64 {
        return Range::EMPTY;
    }
    let slot_end = (u128::from(uaddr) + (u128::from(npages) << shift)).min(u128::from(u64::MAX));
    let lo = u128::from(start.max(uaddr));
    let hi = u128::from(end).min(slot_end);
    if lo < hi {
        Range::new(
            to_u64(lo).expect("lo is a u64"),
            to_u64(hi).expect("hi is at most u64::MAX"),
        )
    } else {
        Range::EMPTY
    }
}

/// hva_range_to_gfn_range() with the formula of the kernel's walker,
/// hva_to_gfn_memslot(end + PAGE_SIZE - 1), in 128-bit arithmetic.
pub fn gfn_oracle(hva_start: u64, hva_end: u64, uaddr: u64, base_gfn: u64, shift: u32) -> Range {
    if shift >= 64 || hva_start >= hva_end || hva_start < uaddr {
        return Range::EMPTY;
    }
    let page = 1u128 << shift;
    let start = u128::from(base_gfn) + ((u128::from(hva_start) - u128::from(uaddr)) >> shift);
    let end =
        u128::from(base_gfn) + ((u128::from(hva_end) + page - 1 - u128::from(uaddr)) >> shift);
    match (to_u64(start), to_u64(end)) {
        (Some(start), Some(end)) => Range::new(start, end),
        _ => Range::EMPTY,
    }
}

/// covers_uhva() by definition.
pub fn covers_oracle(start: u64, end: u64, uhva: u64) -> bool {
    (start..end).contains(&uhva)
}

/// ranges_overlap(): some address is in both.
pub fn overlap_oracle(a_start: u64, a_end: u64, b_start: u64, b_end: u64) -> bool {
    let lo = a_start.max(b_start);
    let hi = a_end.min(b_end);
    a_start < a_end && b_start < b_end && lo < hi
}

/// range_union(): the rules of the design.
pub fn union_oracle(cur_start: u64, cur_end: u64, new_start: u64, new_end: u64) -> Range {
    if cur_start >= cur_end {
        Range::new(new_start, new_end)
    } else if new_start >= new_end {
        Range::new(cur_start, cur_end)
    } else {
        Range::new(cur_start.min(new_start), cur_end.max(new_end))
    }
}

/// The classifier table of the design, from raw values.
pub fn inval_point_oracle(event: u32, usage: u32, policy: u32, implicit: bool) -> u32 {
    const UNMAP: u32 = 0;
    const EXCLUSIVE: u32 = 7;
    const GUEST_USES_PFN: u32 = 1;
    const KNOWN_USAGE: u32 = 3;
    const SPLIT: u32 = 1;
    const RANGE_ONLY: u32 = 2;
    const AT_START: u32 = 0;
    const DEFERRABLE: u32 = 1;

    if event > EXCLUSIVE || usage & !KNOWN_USAGE != 0 {
        return AT_START;
    }
    match policy {
        SPLIT if event == UNMAP && usage & GUEST_USES_PFN == 0 && implicit => DEFERRABLE,
        RANGE_ONLY => DEFERRABLE,
        _ => AT_START,
    }
}
