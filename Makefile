# ember — build, test, demo.  `make help` lists the targets.
#
# Layout of outputs: ./ember (the binary), build/ (objects, sanitizer builds,
# unit-test binaries, the test guest), and the demo guest under the cache
# directory (see guest/README.md), linked into build/guest/.

CC      ?= cc
CLANG   ?= clang
VERSION := 0.1.0
CSTD    := -std=c11 -D_GNU_SOURCE
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wno-unused-parameter
CFLAGS  ?= -O2 -g
CFLAGS  += $(CSTD) $(WARN) -DEMBER_VERSION='"$(VERSION)"' -MMD -MP -I.
LDLIBS  := -luring -lseccomp -lpthread

# Every module of the VMM except main.c: top-level *.c and the subsystem
# directories.  New files are picked up automatically.
CORE_SRCS := $(filter-out main.c,$(wildcard *.c)) $(wildcard boot/*.c virtio/*.c) \
             $(filter-out seccomp/gen_names.c,$(wildcard seccomp/*.c))
SRCS      := main.c $(CORE_SRCS)

OBJS      := $(SRCS:%.c=build/obj/%.o)
CORE_OBJS := $(CORE_SRCS:%.c=build/obj/%.o)

# Sanitizer build used by unit tests (and available as ./build/ember-asan).
SAN       := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
ASAN_OBJS := $(SRCS:%.c=build/asan/%.o)
ASAN_CORE := $(CORE_SRCS:%.c=build/asan/%.o)

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=build/unit/%)

.PHONY: all help test unit kvmguests clang-check testguest guest demo deps clean fuzz fuzz-seeds bench soak
all: ember

help:
	@echo "make            build ./ember"
	@echo "make test       build everything and run every test (unit, KVM, Linux)"
	@echo "make demo       install packages, build ember and the demo guest, boot it"
	@echo "make guest      build the demo Linux kernel and initramfs (cached)"
	@echo "make testguest  build the freestanding test guest (build/testguest.elf)"
	@echo "make fuzz       build the libFuzzer targets build/fuzz/fuzz_{mmio,queue,blk,net,serial,boot} (clang)"
	@echo "make fuzz-seeds regenerate their seed corpora tests/fuzz/corpus/<target>/"
	@echo "make bench      ember vs QEMU microvm: startup, churn, memory, blk, net, Linux boot (6-8 min; docs/benchmarks.md)"
	@echo "make soak       10-minute I/O soak: ember's RSS must stay flat (SOAK_SECS=600; make test runs 20 s)"
	@echo "make clean      remove build outputs (not the demo guest cache)"

# ./ember is linked statically, as a static PIE (still loaded at a random
# address): exec needs no dynamic loader (startup is what users benchmark),
# and no shared-library pages sit resident in every VM (docs/benchmarks.md).
# STATIC= links it dynamically; build/ember-dynamic always is (tests that
# interpose libc calls with LD_PRELOAD use it).
STATIC  ?= -static-pie
ember: $(OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) $(STATIC) -o $@ $^ $(LDLIBS)

build/ember-dynamic: $(OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# seccomp/filter.c's table of syscall names, from the libseccomp ember links
# (seccomp/gen_names.c says why it is made at build time).
build/gen/sc_names.h: seccomp/gen_names.c seccomp/filter.h
	@mkdir -p $(dir $@)
	@echo "  GEN     $@"
	@$(CC) $(CSTD) $(WARN) -I. -o build/gen/gen_names $< -lseccomp
	@build/gen/gen_names >$@.tmp && mv $@.tmp $@
build/obj/seccomp/filter.o build/asan/seccomp/filter.o: build/gen/sc_names.h

build/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) -c -o $@ $<

build/asan/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC-SAN  $<"
	@$(CC) $(CFLAGS) -O1 $(SAN) -DEMBER_TEST_BUILD -c -o $@ $<

build/ember-asan: $(ASAN_OBJS)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDLIBS)

build/unit/%: tests/unit/%.c $(ASAN_CORE)
	@mkdir -p $(dir $@)
	@echo "  TEST    $<"
	@$(CC) $(CFLAGS) -O1 $(SAN) -o $@ $< $(ASAN_CORE) $(LDLIBS)

unit: $(UNIT_BINS)

# Minimal assembly guests for the KVM tests (tests/kvm/*.S).
KVM_GUESTS := $(patsubst tests/kvm/%.S,build/kvmguest/%.elf,$(wildcard tests/kvm/*.S))
build/kvmguest/%.elf: tests/kvm/%.S tests/kvm/common.inc tests/kvm/guest.ld
	@mkdir -p $(dir $@)
	$(CC) -nostdlib -static -no-pie -Wl,--build-id=none -Wl,--no-warn-rwx-segments \
		-Wl,-T,tests/kvm/guest.ld -o $@ $<
kvmguests: $(KVM_GUESTS)

# The whole tree must also build warning-free with clang.
clang-check: build/gen/sc_names.h
	@mkdir -p build
	@for f in $(SRCS) $(UNIT_SRCS) seccomp/gen_names.c; do \
		$(CLANG) $(CSTD) $(WARN) -I. -DEMBER_VERSION='"$(VERSION)"' -fsyntax-only $$f || exit 1; \
	done
	@echo "clang: $(words $(SRCS) $(UNIT_SRCS) seccomp/gen_names.c) files clean"

testguest:
	$(MAKE) -C tests/guest O=$(CURDIR)/build

# libFuzzer targets (tests/fuzz/fuzz_<name>.c), clang with
# -fsanitize=fuzzer,address,undefined: each is linked with the modules it
# drives (FUZZ_SRCS_<name>).  make test runs every one for FUZZ_SECONDS
# from its seed corpus tests/fuzz/corpus/<name>/ (tests/integration/fuzz.sh);
# make fuzz-seeds regenerates those seeds from the targets' fuzz_seeds().
FUZZ_SECONDS ?= 15
FUZZ_NAMES := mmio queue blk net serial boot
FUZZ_BINS  := $(FUZZ_NAMES:%=build/fuzz/fuzz_%)
FUZZ_VIRTIO := virtio/mmio.c virtio/queue.c loop.c mem.c err.c
FUZZ_SRCS_mmio   := $(FUZZ_VIRTIO)
FUZZ_SRCS_queue  := virtio/queue.c mem.c
FUZZ_SRCS_blk    := virtio/blk.c $(FUZZ_VIRTIO)
FUZZ_SRCS_net    := virtio/net.c $(FUZZ_VIRTIO)
FUZZ_SRCS_serial := serial.c
FUZZ_SRCS_boot   := $(filter-out boot/cpuid.c,$(wildcard boot/*.c)) mem.c err.c
FUZZ_FLAGS := $(CSTD) $(WARN) -I. -g -O1 -fno-omit-frame-pointer -fno-sanitize-recover=all
# Every header: one clang command builds a whole target, so no .d files.
FUZZ_HDRS  := $(wildcard *.h boot/*.h virtio/*.h tests/fuzz/*.h)
.SECONDEXPANSION:
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $$(FUZZ_SRCS_$$*) $(FUZZ_HDRS)
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	@$(CLANG) $(FUZZ_FLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< $(FUZZ_SRCS_$*) \
		-luring -lpthread
fuzz: $(FUZZ_BINS)

# The same target with source-based coverage instead of the sanitizers, to
# measure what a corpus reaches (docs/reliability.md has the commands).
build/fuzz/cov_%: tests/fuzz/fuzz_%.c $$(FUZZ_SRCS_$$*) $(FUZZ_HDRS)
	@mkdir -p $(dir $@)
	@echo "  FUZZCOV $@"
	@$(CLANG) $(FUZZ_FLAGS) -fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping \
		-o $@ $< $(FUZZ_SRCS_$*) -luring -lpthread

build/fuzz/seeds_%: tests/fuzz/fuzz_%.c tests/fuzz/seeds.c $$(FUZZ_SRCS_$$*) $(FUZZ_HDRS)
	@mkdir -p $(dir $@)
	@echo "  SEEDS   $@"
	@$(CLANG) $(FUZZ_FLAGS) -DFUZZ_SEEDS -fsanitize=address,undefined -o $@ tests/fuzz/seeds.c \
		$< $(FUZZ_SRCS_$*) -luring -lpthread
fuzz-seeds: $(FUZZ_NAMES:%=build/fuzz/seeds_%)
	@for t in $(FUZZ_NAMES); do \
		rm -rf tests/fuzz/corpus/$$t && mkdir -p tests/fuzz/corpus/$$t && \
		build/fuzz/seeds_$$t tests/fuzz/corpus/$$t || exit 1; \
	done

guest:
	guest/build.sh $(CURDIR)/build/guest

deps:
	.ci/deps

test: ember build/ember-asan build/ember-dynamic unit kvmguests clang-check testguest guest fuzz
	FUZZ_SECONDS=$(FUZZ_SECONDS) tests/run

demo: deps ember guest
	guest/demo.sh

# Benchmarks (never part of make test): ember vs QEMU microvm, side by side.
build/execbench: bench/execbench.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -o $@ $<
build/netpeer-bench: bench/netpeer-bench.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -Wall -Wextra -Werror -o $@ $<
# bench/deps installs what the benchmarks need beyond make test's packages
# (fio, gnuplot-nox); the demo guest (make guest) is cached by make test.
bench: ember testguest guest build/execbench build/netpeer-bench
	bench/deps
	bench/run.sh

# The long I/O soak (tests/integration/io-soak.sh, docs/reliability.md):
# disk and network traffic for SOAK_SECS while ember's RSS is sampled.
SOAK_SECS ?= 600
soak: ember testguest
	IO_SOAK_SECS=$(SOAK_SECS) nice -n 10 tests/integration/io-soak.sh

clean:
	rm -rf build ember

-include $(OBJS:.o=.d) $(ASAN_OBJS:.o=.d)
