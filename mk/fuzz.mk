# mk/fuzz.mk — libFuzzer targets (clang from Debian: clang + libclang-rt-dev).
#
#   make fuzz [FUZZ_SECONDS=60]   build, then run each target for FUZZ_SECONDS
#   make fuzz-build               only build build-fuzz/fuzz_*
#
# The targets compile only the sources they exercise (not all of libcts),
# with -fsanitize=fuzzer,address,undefined.  Each run starts from the seed
# corpus in fuzz/corpus/<target>/ and keeps what it finds in
# build-fuzz/corpus-<target>/; crashes land in build-fuzz/ as crash-*.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_BUILD   ?= build-fuzz
FUZZ_FLAGS   := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -g -O1 \
                -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=all -Iinclude $(DEP_CFLAGS)
FUZZ_UTIL    := src/alloc.c src/buf.c src/error.c src/log.c src/secret.c \
                src/util.c src/contact.c src/codec.c
FUZZ_READER_SRC := fuzz/fuzz_reader.c src/reader.c src/encoding.c src/mapper.c \
                   src/email.c $(FUZZ_UTIL)
FUZZ_API_SRC := fuzz/fuzz_api.c src/api.c $(FUZZ_UTIL)
FUZZ_TARGETS := $(FUZZ_BUILD)/fuzz_reader
ifneq ($(wildcard fuzz/fuzz_api.c),)
FUZZ_TARGETS += $(FUZZ_BUILD)/fuzz_api
endif

.PHONY: fuzz fuzz-build

$(FUZZ_BUILD)/fuzz_reader: $(FUZZ_READER_SRC) $(wildcard include/*.h)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $(FUZZ_READER_SRC) $(DEP_LIBS)

$(FUZZ_BUILD)/fuzz_api: $(FUZZ_API_SRC) $(wildcard include/*.h)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $(FUZZ_API_SRC) $(DEP_LIBS)

fuzz-build: $(FUZZ_TARGETS)

fuzz: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
	  name=$$(basename $$t | sed 's/^fuzz_//'); \
	  mkdir -p $(FUZZ_BUILD)/corpus-$$name; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS)s"; \
	  $$t -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 \
	      -rss_limit_mb=1024 -artifact_prefix=$(FUZZ_BUILD)/ -print_final_stats=1 \
	      $(FUZZ_BUILD)/corpus-$$name fuzz/corpus/$$name; \
	done
