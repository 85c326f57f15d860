//! Compiles the C policy for the host and generates its Rust bindings.
//!
//! `kvm-mm/virt/kvm/kvm_mm_policy.c` is kernel code. It compiles unchanged
//! against `shim/linux/*.h`, which define only what it uses. `kconfig.h`
//! is force-included, as Kbuild does with the real one. `csrc/dispatch.c`
//! makes the header's static inline `kvm_mm_*()` wrappers callable, once
//! with `CONFIG_KVM_MM_RUST=0` (C) and once with `=1` (Rust).
//!
//! bindgen reads `csrc/kvm_mm_diff.h`, which includes `kvm_mm_policy.h`.
//! It needs libclang. clang-sys finds Debian's through `llvm-config` or its
//! list of usual directories, and `LIBCLANG_PATH` overrides both.

use std::env;
use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR is not set")?);
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    let kvm_dir = manifest_dir.join("../../kvm-mm/virt/kvm");
    let shim_dir = manifest_dir.join("shim");
    let csrc_dir = manifest_dir.join("csrc");
    let kconfig = shim_dir.join("linux/kconfig.h");
    let compiler_types = shim_dir.join("linux/compiler_types.h");
    let policy_c = kvm_dir.join("kvm_mm_policy.c");
    let diff_h = csrc_dir.join("kvm_mm_diff.h");

    // cc prints only rerun-if-env-changed lines, and any rerun-if line turns
    // off Cargo's scan of the package, so list every input. The kernel
    // sources live outside this package and would never be scanned anyway.
    let mut inputs = vec![
        manifest_dir.join("build.rs"),
        policy_c.clone(),
        kvm_dir.join("kvm_mm_policy.h"),
        diff_h.clone(),
        csrc_dir.join("dispatch.c"),
    ];
    inputs.extend(headers_in(&shim_dir.join("linux"))?);
    for input in &inputs {
        println!("cargo::rerun-if-changed={}", input.display());
    }
    println!("cargo::rerun-if-env-changed=LIBCLANG_PATH");

    c_build(&shim_dir, &kvm_dir, &csrc_dir, &[&kconfig, &compiler_types])
        .file(&policy_c)
        .define("CONFIG_KVM_MM_RUST", "0")
        .out_dir(out_dir.join("policy"))
        .try_compile("kvm_mm_policy")?;
    for (rust, prefix) in [("0", "kvm_mm_diff_c_"), ("1", "kvm_mm_diff_rs_")] {
        c_build(&shim_dir, &kvm_dir, &csrc_dir, &[&kconfig, &compiler_types])
            .file(csrc_dir.join("dispatch.c"))
            .define("CONFIG_KVM_MM_RUST", rust)
            .define("KVM_MM_DIFF_PREFIX", prefix)
            .out_dir(out_dir.join(prefix))
            .try_compile(&format!("{prefix}dispatch"))?;
    }

    let bindings = bindgen::Builder::default()
        .header(path_str(&diff_h)?)
        .clang_args(["-I", path_str(&shim_dir)?, "-I", path_str(&kvm_dir)?])
        .clang_args(["-include", path_str(&kconfig)?, "-DCONFIG_KVM_MM_RUST=0"])
        .clang_args(["-include", path_str(&compiler_types)?])
        .allowlist_function("kvm_mm_(c|rs|diff_c|diff_rs)_.*")
        .allowlist_type("kvm_mm_.*")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .derive_default(true)
        .derive_eq(true)
        .derive_hash(true)
        .layout_tests(true)
        .formatter(bindgen::Formatter::Prettyplease)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .map_err(|err| {
            format!(
                "bindgen failed on {}: {err}; it needs libclang (Debian: libclang-14-dev), \
                 found through llvm-config or LIBCLANG_PATH",
                diff_h.display()
            )
        })?;
    bindings.write_to_file(out_dir.join("kvm_mm_policy.rs"))?;
    Ok(())
}

/// A C compiler set up as a kernel build would be for this code: gnu11, the
/// shim instead of the kernel's include directories, and warnings as errors.
fn c_build(shim_dir: &Path, kvm_dir: &Path, csrc_dir: &Path, forced: &[&Path]) -> cc::Build {
    let mut build = cc::Build::new();
    build.include(shim_dir).include(kvm_dir).include(csrc_dir);
    for header in forced {
        build.flag("-include").flag(header);
    }
    build
        .std("gnu11")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        // Warnings the kernel enables beyond -Wall -Wextra.
        .flag_if_supported("-Wmissing-prototypes")
        .flag_if_supported("-Wstrict-prototypes")
        .flag_if_supported("-Wdeclaration-after-statement")
        .flag_if_supported("-Wvla");
    build
}

/// The `.h` files in `dir`, sorted.
fn headers_in(dir: &Path) -> Result<Vec<PathBuf>, Box<dyn Error>> {
    let mut headers = Vec::new();
    for entry in fs::read_dir(dir).map_err(|err| format!("cannot read {}: {err}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "h") {
            headers.push(path);
        }
    }
    headers.sort();
    Ok(headers)
}

fn path_str(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))
}
