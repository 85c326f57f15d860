// SPDX-License-Identifier: GPL-2.0-only
/*
 * hva and pfn helpers shared by KVM's MMU notifier callbacks and the
 * gfn_to_pfn cache.
 */

#include <linux/kvm_host.h>

#include "kvm_mm.h"
