//! Cut and insert scenarios over the fixtures, as snapshots.

use kmm_csym::{cut, drop_static, insert, prototype_of, Anchor, Error};

use crate::{assert_coverage, fixture};

/// The remaining file and the moved texts, for a snapshot.
fn show(rest: &str, moved: &[String]) -> String {
    let mut out = format!("===== rest =====\n{rest}");
    for (i, m) in moved.iter().enumerate() {
        out.push_str(&format!("===== moved {i} =====\n{m}"));
    }
    out
}

#[test]
fn cut_functions() {
    let src = fixture("functions.c");
    let (rest, moved) = cut(&src, &["kvm_unmap_range", "__handle_range", "to_kvm"]).unwrap();
    assert_coverage("rest", &rest);
    insta::assert_snapshot!(show(&rest, &moved));
}

#[test]
fn cut_first_and_last_items_of_ifdef_blocks() {
    let src = "#ifdef CONFIG_A\nint a1;\n\nint a2;\n#endif\n\n#ifdef CONFIG_B\nint b1;\n\nint b2;\n#endif\n";
    let (rest, _) = cut(src, &["a1", "b2"]).unwrap();
    insta::assert_snapshot!(rest);
}

#[test]
fn cut_types() {
    let src = fixture("types.c");
    let (rest, moved) = cut(
        &src,
        &[
            "struct kvm_hva_range",
            "hva_handler_t",
            "on_lock_fn_t",
            "ops",
            "randomized",
        ],
    )
    .unwrap();
    assert_coverage("rest", &rest);
    insta::assert_snapshot!(show(&rest, &moved));
}

#[test]
fn cut_macros() {
    let src = fixture("macros.c");
    let (rest, moved) = cut(&src, &["WITH_BRACES", "for_each_thing", "thing_lock"]).unwrap();
    assert_coverage("rest", &rest);
    insta::assert_snapshot!(show(&rest, &moved));
}

#[test]
fn move_functions_to_another_file_and_header() {
    let src = fixture("functions.c");
    let (rest, moved) = cut(&src, &["__handle_range", "kvm_unmap_range"]).unwrap();
    let c_texts: Vec<String> = moved.iter().map(|t| drop_static(t)).collect();
    let protos: Vec<String> = moved
        .iter()
        .map(|t| prototype_of(t))
        .collect::<Result<_, _>>()
        .unwrap();
    let dst = insert(
        &fixture("literals.c"),
        &c_texts,
        Anchor::AfterLine("#include <linux/kernel.h>".into()),
    )
    .unwrap();
    let header = insert(&fixture("guard.h"), &protos, Anchor::End).unwrap();
    assert_coverage("dst", &dst);
    insta::assert_snapshot!(format!(
        "===== source =====\n{rest}===== destination =====\n{dst}===== header =====\n{header}"
    ));
}

#[test]
fn insert_anchors_in_a_header() {
    let h = fixture("guard.h");
    let t = vec!["void kvm_mm_new(struct kvm *kvm);\n".to_string()];
    let mut out = String::new();
    for at in [
        Anchor::End,
        Anchor::Before("kvm_mm_init".into()),
        Anchor::After("kvm_mm_init".into()),
        Anchor::Before("struct kvm_mm".into()),
        Anchor::AfterLine("#ifdef CONFIG_KVM_MM".into()),
        Anchor::BeforeLine("#endif /* __KVM_MM_H__ */".into()),
        Anchor::After("kvm_mm_enable".into()),
    ] {
        out.push_str(&format!("===== {at:?} =====\n"));
        out.push_str(&insert(&h, &t, at).unwrap());
    }
    insta::assert_snapshot!(out);
}

#[test]
fn insert_into_a_file_without_guard_or_newline() {
    let t = vec!["int x;\n".to_string(), "int y;\n".to_string()];
    assert_eq!(
        insert("int a;", &t, Anchor::End).unwrap(),
        "int a;\n\nint x;\n\nint y;\n"
    );
    assert_eq!(
        insert(
            "#include <a.h>\n#include <a.h>\n",
            &t,
            Anchor::AfterLine("#include <a.h>".into())
        )
        .unwrap_err(),
        Error::LineAmbiguous {
            line: "#include <a.h>".into(),
            lines: vec![1, 2]
        }
    );
}

#[test]
fn round_trip_restores_a_file_with_kernel_spacing() {
    let src = fixture("literals.c");
    let (rest, moved) = cut(&src, &["count_braces", "print_weird"]).unwrap();
    let back = insert(&rest, &moved, Anchor::After("marker".into())).unwrap();
    assert_eq!(back, src);
}
