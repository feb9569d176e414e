# bringup: build the monitor, the boot disk and the GCE image; boot it in QEMU.
#
#   make run         build everything and drop into the monitor prompt in QEMU
#                    (an NVMe disk and the gVNIC model attached; escape key printed at start)
#   make test        unit, driver and QEMU system tests (SeaBIOS and OVMF)
#   make bench       bringup against U-Boot on the same QEMU and disk (docs/PERFORMANCE.md)
#   make fuzz        fuzz the shell, the frame decoder and the gVNIC option parser (cargo-fuzz, nightly; FUZZ_SECONDS each)
#   make image       target/bringup.img (hybrid BIOS+UEFI GPT disk)
#   make gce-image   target/gce/bringup-gce.tar.gz (disk.raw for `gcloud compute images create`)
#   make qemu-bios / make qemu-uefi   boot the image directly in QEMU (SeaBIOS / OVMF)
#   make deps        install missing system packages and the rustup target (idempotent)
#   make qemu10      unpack QEMU 10 (SHA-NI under TCG) into target/qemu-10, not installed
#   make qemu11      unpack QEMU 11.1 (vfio-user client) + its trixie runtime into target/qemu-11

SHELL := /bin/bash
# The paths below assume cargo's default target/ directory.
unexport CARGO_TARGET_DIR
CARGO ?= cargo
TARGET := x86_64-unknown-none
MONITOR_ELF := target/$(TARGET)/release/monitor
IMAGE := target/bringup.img
GCE_TARBALL := target/gce/bringup-gce.tar.gz
IMAGE_TOOL := target/debug/bringup-image
# Kernel command line baked into the image's grub.cfg, e.g. `make image CMDLINE="dma=16M"`.
CMDLINE ?= dma=64M
QEMU_MEM ?= 1G
OVMF_CODE := /usr/share/OVMF/OVMF_CODE_4M.fd
OVMF_VARS_TEMPLATE := /usr/share/OVMF/OVMF_VARS_4M.fd
OVMF_VARS := target/OVMF_VARS_4M.fd
# TCG: OVMF stops with a KVM emulation failure on these machines (reference/boot-path.md).
# mon:stdio: Ctrl-C goes to the monitor (to abort a long wait), Ctrl-A X quits QEMU.
QEMU_COMMON := -machine q35 -accel tcg -m $(QEMU_MEM) -display none -vga none -serial mon:stdio \
	-drive file=$(IMAGE),format=raw,if=none,id=boot -device ide-hd,drive=boot,bootindex=0

# Build and boot: qemu, ovmf, grub, mtools, gdisk, tar. Tests: tshark (decodes the gVNIC
# model's pcap), openssh-server + socat + iproute2 (the GCE serial gateway stand-in, in its own
# network namespace), util-linux (unshare, nsenter).
# host-client/tests/linux_gve.rs and ipxe_gve.rs fetch Debian's kernels (bookworm 6.1,
# bookworm-backports 6.12, trixie-backports 7.x), busybox-static and trixie's ipxe once through
# scripts/apt-private.sh into target/linux-cache/ (dpkg-deb unpacks them; xz-utils decompresses
# the .ko.xz modules of 6.12 and 7.x).
# Bench: u-boot-qemu (the monitor we measure against). python3: zlib.crc32, the reference
# CRC-32 the digest tests compare with, and the metadata HTTP server of the network tests.
# Network tests: dnsmasq-base (a real DHCP server, no service), iproute2 (namespaces, TAP).
# make qemu11: binutils (readelf: the DT_NEEDED closure of QEMU 11.1 against trixie's libraries).
DEB_PACKAGES := qemu-system-x86 ovmf grub-pc-bin grub-efi-amd64-bin grub-common mtools gdisk tar \
	tshark openssh-server socat iproute2 util-linux u-boot-qemu python3 dnsmasq-base xz-utils \
	binutils
BRINGUP := target/debug/bringup
DEMO_DISK := target/demo-nvme.img
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps monitor image gce-image run test bench fuzz qemu-bios qemu-uefi clean-image qemu10 qemu11

all: image

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	fi
	@rustup target list --installed | grep -qx $(TARGET) || rustup target add $(TARGET)

monitor: deps
	$(CARGO) build -p monitor --release --target $(TARGET)

$(IMAGE_TOOL): FORCE
	$(CARGO) build -q -p image --bin bringup-image

image: monitor $(IMAGE_TOOL)
	$(IMAGE_TOOL) disk --monitor $(MONITOR_ELF) --output $(IMAGE) --cmdline "$(CMDLINE)"

gce-image: image
	$(IMAGE_TOOL) gce --image $(IMAGE) --out-dir target/gce --tarball $(GCE_TARBALL)

$(BRINGUP): FORCE
	$(CARGO) build -q -p host-client --bin bringup

# A 64 MiB demo disk whose first sector says what it is, so `nvme read 0 --dump` shows text.
$(DEMO_DISK):
	@mkdir -p target
	head -c 67108864 /dev/urandom > $@
	printf 'bringup demo disk: this text is LBA 0 of the NVMe namespace\n' | dd of=$@ conv=notrunc status=none

run: image $(BRINGUP) $(DEMO_DISK)
	$(BRINGUP) qemu --nvme $(DEMO_DISK) --gvnic --gvnic-pcap target/gvnic.pcap

# QEMU 10 from bookworm-backports, unpacked (not installed) into target/qemu-10 and run
# through target/qemu-10/bin/qemu-system-x86_64: 7.2's TCG has no SHA-NI, 10's does (the
# SHA-NI system test and the bench's SHA-NI/portable pair). Idempotent; the system's QEMU
# (whose multi-process proxy the gVNIC tests use) stays what it is.
QEMU10 := target/qemu-10/bin/qemu-system-x86_64
qemu10: deps
	scripts/qemu10.sh target/qemu-10

# QEMU 11.1 from trixie-backports, with trixie's runtime beside it (its own loader, libraries,
# SeaBIOS), unpacked into target/qemu-11 and run through target/qemu-11/bin/qemu-system-x86_64:
# the first QEMU here with the vfio-user client (`-device vfio-user-pci`), which delivers the
# gVNIC model's MSI-X interrupts. Idempotent; the APT configuration is private (target/apt).
QEMU11 := target/qemu-11/bin/qemu-system-x86_64
qemu11: deps
	scripts/qemu11.sh target/qemu-11

# The system tests boot target/bringup.img; DEB packages come from `deps` (via image).
# The monitor is not a default workspace member (bare-metal binary): its host-testable
# library is tested on its own.
test: image qemu10 qemu11
	$(CARGO) test --workspace --exclude monitor
	$(CARGO) test -p monitor --lib

bench: image qemu10
	$(CARGO) run --release -p bench -- --out target/bench.json

# Not part of `make test`: libFuzzer needs nightly. The pool behind the shell target is
# leaked on purpose (as on bare metal, it lives forever), hence -detect_leaks=0.
FUZZ_SECONDS ?= 60
fuzz:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in shell frame_decode gvnic_options; do \
	  $(CARGO) +nightly fuzz run $$t -O -- -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -detect_leaks=0 \
	    $$( [ $$t = shell ] && echo -dict=dict/shell.dict ) || exit 1; \
	done

qemu-bios: image
	qemu-system-x86_64 $(QEMU_COMMON)

$(OVMF_VARS): $(OVMF_VARS_TEMPLATE)
	@mkdir -p target
	cp $(OVMF_VARS_TEMPLATE) $(OVMF_VARS)

qemu-uefi: image $(OVMF_VARS)
	qemu-system-x86_64 $(QEMU_COMMON) \
	  -drive if=pflash,format=raw,unit=0,readonly=on,file=$(OVMF_CODE) \
	  -drive if=pflash,format=raw,unit=1,file=$(OVMF_VARS)

clean-image:
	rm -f $(IMAGE) $(GCE_TARBALL) target/gce/disk.raw

FORCE:
