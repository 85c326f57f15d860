/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Userspace stand-in for <linux/kconfig.h>, which Kbuild force-includes;
 * build.rs passes -include for this one. Unlike the kernel's IS_ENABLED(),
 * this one needs every option it is given to be defined to 0 or 1 (build.rs
 * defines CONFIG_KVM_MM_RUST), so a forgotten option fails to compile.
 */
#ifndef KVM_MM_SHIM_LINUX_KCONFIG_H
#define KVM_MM_SHIM_LINUX_KCONFIG_H

#define IS_ENABLED(option) (option)

#endif
