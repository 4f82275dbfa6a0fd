# SPDX-License-Identifier: GPL-2.0
# User entry points of vhost-rs. The module itself is built by the kernel's Kbuild (see the
# Kbuild file); this Makefile only finds the kernel tree and runs the scripts.
#
#   make setup        install everything on a fresh Debian 12 machine
#   make kernel       build (or reuse) the cached test kernel; make -s kernel-dir prints it
#   make              build vhost-rs.ko against $(KDIR) (default: the test kernel)
#   make check        every test: host unit tests, then the VM tests against both devices
#   make bench        the benchmark: ours against vhost_net.ko, as ratios
#   make check-qemu   QEMU variants against both devices (slow; CI runs it after check)
#   make fuzz         both fuzzers for FUZZ_SECONDS (1800) each: in the VM, then ring.rs and
#                     ring/packed.rs on the host
#   make fuzz-host    libFuzzer on ring.rs and ring/packed.rs on the host, FUZZ_SECONDS (600)
#                     shared; no VM
#   make demo         a real QEMU guest networking through /dev/vhost-rs-net (nested, in the VM)
#   make install      install vhost-rs.ko (modules_install) and the udev rule
#   make CLIPPY=1     build with clippy; make fmt / make fmt-check for rustfmt

REPO := $(dir $(abspath $(lastword $(MAKEFILE_LIST))))
KDIR ?= $(shell $(REPO)scripts/kernel.sh dir)
export PATH := /usr/lib/llvm-19/bin:$(HOME)/.cargo/bin:$(PATH)
export LIBCLANG_PATH := /usr/lib/llvm-19/lib
# Build with LLVM exactly when the kernel was built with it.
LLVM_FLAG := $(if $(shell grep -s '^CONFIG_CC_IS_CLANG=y' $(KDIR)/.config),LLVM=1)
KMAKE := $(MAKE) -C $(KDIR) M=$(REPO:%/=%) $(LLVM_FLAG) $(if $(CLIPPY),CLIPPY=1) W=1
RUST_SRCS := $(wildcard $(REPO)*.rs $(REPO)net/*.rs $(REPO)ring/*.rs $(REPO)sys/*.rs)

all: vhost-rs.ko

vhost-rs.ko: $(RUST_SRCS) $(wildcard $(REPO)sys/*.[ch]) Kbuild
	@test -f $(KDIR)/Module.symvers || { \
		echo "error: no built kernel at $(KDIR); run 'make setup kernel' or set KDIR" >&2; exit 1; }
	$(KMAKE) modules

setup:
	@$(REPO)scripts/setup.sh

kernel:
	@$(REPO)scripts/kernel.sh

kernel-dir:
	@echo $(KDIR)

check:
	@$(REPO)scripts/check.sh

# Installs the module for the running kernel (or KDIR's) and the udev rule; run as root.
INSTALL_MOD_DIR ?= extra
install: vhost-rs.ko
	$(KMAKE) INSTALL_MOD_DIR=$(INSTALL_MOD_DIR) $(if $(DESTDIR),INSTALL_MOD_PATH=$(DESTDIR)) modules_install
	install -D -m 0644 $(REPO)udev/60-vhost-rs.rules $(DESTDIR)/etc/udev/rules.d/60-vhost-rs.rules
	@command -v udevadm >/dev/null && udevadm control --reload-rules || true

# A real QEMU guest (nested, in the test VM) networking through /dev/vhost-rs-net, then
# through /dev/vhost-net for comparison.
demo:
	@$(REPO)scripts/demo.sh

# Ours against vhost_net.ko in one VM run, interleaved rounds, medians and ratios:
# bench/results/latest.{md,csv,png}. Never part of make check.
bench:
	@$(REPO)scripts/bench.sh

# QEMU variants (mrg_rxbuf/event_idx/indirect and offloads off, multiqueue with poll-us, reboot,
# SIGKILL, live migration, ring reset, vIOMMU, packed rings), both devices, nested in the VM.
# CI (.ci/run) runs it after make check, skipping some of the C reference's guests for time.
check-qemu:
	@$(REPO)scripts/check-qemu.sh

# The long fuzzing run: tests/bin/vhost_fuzz in the VM (both devices, seeded, FUZZ_SEED),
# then ring.rs and ring/packed.rs under libFuzzer; a bounded run of each is part of make check.
fuzz:
	@FUZZ_SECONDS=$(or $(FUZZ_SECONDS),1800) $(REPO)scripts/fuzz.sh

# Coverage-guided fuzzing of ring.rs and ring/packed.rs (tests/fuzz) on one core, FUZZ_SECONDS
# long (600) in all, half each;
# the scratch corpus and any crash input go to ~/.cache/vhost-rs/fuzz.
fuzz-host:
	@$(REPO)scripts/fuzz-host.sh $(or $(FUZZ_SECONDS),600)

KSRC = $(shell . $(REPO)scripts/common.sh && kernel_src)
RUSTFMT := rustfmt --edition 2021 --config-path $(KSRC)/.rustfmt.toml

fmt:
	$(RUSTFMT) $(RUST_SRCS)

fmt-check:
	$(RUSTFMT) --check $(RUST_SRCS)

clean:
	$(KMAKE) clean
	$(MAKE) -C $(REPO)tests clean

.PHONY: all setup kernel kernel-dir check check-qemu install bench demo fuzz fuzz-host fmt fmt-check \
	clean
