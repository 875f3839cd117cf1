# mk/bench.mk — helper programs of scripts/bench.  Built with `all` (so
# they cannot rot), never installed, never tests.
BENCH_PROGS := $(BUILD)/bench/http_floor

all: $(BENCH_PROGS)
bench-progs: $(BENCH_PROGS)

$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Isrc -MMD -MP -o $@ $< $(LIB) $(ALL_LDFLAGS) $(DEP_LIBS)

.PHONY: bench-progs
