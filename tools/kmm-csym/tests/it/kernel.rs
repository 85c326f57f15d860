//! Checks against real kernel sources, when a tree is on this machine.
//!
//! The files are read from `$KMM_LINUX_SRC` (a kernel tree), else from
//! the Debian `linux-source-6.1` tarball (extracted once per run). Tests
//! skip with a note on stderr when a file is missing. No kernel text is
//! committed: these tests only assert properties of the parse.

use std::path::PathBuf;

use kmm_csym::{cut, find, items, ItemKind};

use crate::{assert_coverage, line_of};

/// The Debian tarball the series is based on.
const TARBALL: &str = "/usr/src/linux-source-6.1.tar.xz";

/// A kernel tree to read files from: `$KMM_LINUX_SRC`, or the files these
/// tests need, extracted once from the Debian tarball into a temporary
/// directory (the repository holds no kernel text).
fn kernel_tree() -> Option<&'static std::path::Path> {
    static TREE: std::sync::OnceLock<Option<(Option<tempfile::TempDir>, PathBuf)>> =
        std::sync::OnceLock::new();
    TREE.get_or_init(|| {
        if let Some(dir) = std::env::var_os("KMM_LINUX_SRC") {
            return Some((None, PathBuf::from(dir)));
        }
        if !std::path::Path::new(TARBALL).exists() {
            return None;
        }
        let dir = tempfile::tempdir().ok()?;
        let st = std::process::Command::new("tar")
            .current_dir(dir.path())
            .args(["-xJf", TARBALL, "--strip-components=1"])
            .args(FILES.iter().map(|f| format!("linux-source-6.1/{f}")))
            .status()
            .ok()?;
        if !st.success() {
            return None;
        }
        let path = dir.path().to_path_buf();
        Some((Some(dir), path))
    })
    .as_ref()
    .map(|(_, p)| p.as_path())
}

/// Every kernel file these tests read.
const FILES: [&str; 6] = [
    "virt/kvm/kvm_main.c",
    "virt/kvm/pfncache.c",
    "arch/x86/kvm/x86.c",
    "arch/x86/kvm/mmu/mmu.c",
    "mm/memory.c",
    "include/linux/kvm_host.h",
];

fn kernel_file(rel: &str) -> Option<String> {
    let found = kernel_tree().and_then(|t| std::fs::read_to_string(t.join(rel)).ok());
    if found.is_none() {
        eprintln!(
            "skipping {rel}: no kernel tree (apt-get install linux-source-6.1, or set KMM_LINUX_SRC)"
        );
    }
    found
}

/// `(symbol, kind, first line of the span, first line of the declaration,
/// last line of the span, number of lines)` in 6.1's kvm_main.c.
const KVM_MAIN: &[(&str, ItemKind, &str, &str, &str, usize)] = &[
    (
        "__kvm_handle_hva_range",
        ItemKind::Function,
        "static __always_inline int __kvm_handle_hva_range(struct kvm *kvm,",
        "static __always_inline int __kvm_handle_hva_range(struct kvm *kvm,",
        "}",
        75,
    ),
    (
        "kvm_handle_hva_range",
        ItemKind::Function,
        "static __always_inline int kvm_handle_hva_range(struct mmu_notifier *mn,",
        "static __always_inline int kvm_handle_hva_range(struct mmu_notifier *mn,",
        "}",
        20,
    ),
    (
        "kvm_handle_hva_range_no_flush",
        ItemKind::Function,
        "static __always_inline int kvm_handle_hva_range_no_flush(struct mmu_notifier *mn,",
        "static __always_inline int kvm_handle_hva_range_no_flush(struct mmu_notifier *mn,",
        "}",
        19,
    ),
    (
        "struct kvm_hva_range",
        ItemKind::Struct,
        "struct kvm_hva_range {",
        "struct kvm_hva_range {",
        "};",
        10,
    ),
    (
        "hva_handler_t",
        ItemKind::Typedef,
        "typedef bool (*hva_handler_t)(struct kvm *kvm, struct kvm_gfn_range *range);",
        "typedef bool (*hva_handler_t)(struct kvm *kvm, struct kvm_gfn_range *range);",
        "typedef bool (*hva_handler_t)(struct kvm *kvm, struct kvm_gfn_range *range);",
        1,
    ),
    (
        "on_lock_fn_t",
        ItemKind::Typedef,
        "typedef void (*on_lock_fn_t)(struct kvm *kvm, unsigned long start,",
        "typedef void (*on_lock_fn_t)(struct kvm *kvm, unsigned long start,",
        "\t\t\t     unsigned long end);",
        2,
    ),
    (
        "on_unlock_fn_t",
        ItemKind::Typedef,
        "typedef void (*on_unlock_fn_t)(struct kvm *kvm);",
        "typedef void (*on_unlock_fn_t)(struct kvm *kvm);",
        "typedef void (*on_unlock_fn_t)(struct kvm *kvm);",
        1,
    ),
    (
        "kvm_null_fn",
        ItemKind::Function,
        "/*",
        "static void kvm_null_fn(void)",
        "}",
        11,
    ),
    (
        "IS_KVM_NULL_FN",
        ItemKind::Macro,
        "#define IS_KVM_NULL_FN(fn) ((fn) == (void *)kvm_null_fn)",
        "#define IS_KVM_NULL_FN(fn) ((fn) == (void *)kvm_null_fn)",
        "#define IS_KVM_NULL_FN(fn) ((fn) == (void *)kvm_null_fn)",
        1,
    ),
    (
        "kvm_for_each_memslot_in_hva_range",
        ItemKind::Macro,
        "/* Iterate over each memslot intersecting [start, last] (inclusive) range */",
        "#define kvm_for_each_memslot_in_hva_range(node, slots, start, last)\t     \\",
        // The macro's last line ends in a backslash, continuing it onto the
        // empty line that follows.
        "",
        6,
    ),
    (
        "kvm_mmu_notifier_invalidate_range_start",
        ItemKind::Function,
        "static int kvm_mmu_notifier_invalidate_range_start(struct mmu_notifier *mn,",
        "static int kvm_mmu_notifier_invalidate_range_start(struct mmu_notifier *mn,",
        "}",
        46,
    ),
];

#[test]
fn kvm_main_symbol_extents() {
    let Some(src) = kernel_file("virt/kvm/kvm_main.c") else {
        return;
    };
    for &(sym, kind, first, decl, last, count) in KVM_MAIN {
        let it = find(&src, sym).unwrap_or_else(|e| panic!("{sym}: {e}"));
        let text = &src[it.span.clone()];
        let lines: Vec<&str> = text.lines().collect();
        let (a, b) = (line_of(&src, it.span.start), line_of(&src, it.span.end - 1));
        eprintln!("{sym}: lines {a}-{b} (declaration at {})", it.line);
        assert_eq!(it.kind, kind, "{sym}");
        assert_eq!(lines[0], first, "{sym}");
        assert_eq!(
            src[it.decl_span.clone()].lines().next(),
            Some(decl),
            "{sym}"
        );
        assert_eq!(lines.last().copied(), Some(last), "{sym}");
        assert_eq!(lines.len(), count, "{sym}");
        assert!(text.ends_with('\n'));
    }
}

#[test]
fn kvm_main_cut_hva_range_machinery() {
    let Some(src) = kernel_file("virt/kvm/kvm_main.c") else {
        return;
    };
    let syms: Vec<&str> = KVM_MAIN
        .iter()
        .map(|k| k.0)
        .filter(|s| *s != "kvm_mmu_notifier_invalidate_range_start")
        .collect();
    let (rest, moved) = cut(&src, &syms).unwrap();
    assert_eq!(moved.len(), syms.len());
    assert_coverage("kvm_main.c after cut", &rest);
    // The hole between the two neighbours is one blank line.
    assert!(rest
        .contains("\tsrcu_read_unlock(&kvm->srcu, idx);\n}\n\nstatic bool kvm_change_spte_gfn("));
    let moved_len: usize = moved.iter().map(String::len).sum();
    assert!(rest.len() + moved_len <= src.len());
    for s in syms {
        assert!(find(&rest, s).is_err(), "{s} is still there");
    }
}

#[test]
fn big_files_are_covered_by_their_items() {
    for rel in [
        "virt/kvm/kvm_main.c",
        "mm/memory.c",
        "arch/x86/kvm/x86.c",
        "virt/kvm/pfncache.c",
        "arch/x86/kvm/mmu/mmu.c",
        "include/linux/kvm_host.h",
    ] {
        let Some(src) = kernel_file(rel) else {
            continue;
        };
        assert_coverage(rel, &src);
        let all = items(&src);
        let functions = all.iter().filter(|i| i.kind == ItemKind::Function).count();
        eprintln!("{rel}: {} items, {functions} functions", all.len());
        for it in &all {
            if it.kind == ItemKind::Function {
                assert_eq!(it.names.len(), 1, "{rel}:{}", it.line);
            }
        }
    }
}
