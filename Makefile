# Tabir: the commands a new user runs. `make test` is what CI runs.
.PHONY: demo counter test examples bench-crypto bench-face bench-server fuzz

# Tabir end to end on this machine: key domain, local server, device, enrol, verify (match and
# no match), identify, delete, audit log; each step with its time and bytes on the wire.
demo:
	./scripts/demo.sh

# The counter app (and the auditor page) on this machine, against a throwaway local server:
# open http://127.0.0.1:8080/ in a browser with a camera. Ctrl-C stops it.
counter:
	./scripts/counter.sh

# ONNX Runtime's library comes from the pinned PyPI wheel (scripts/setup-ort.sh), Chromium and
# ChromeDriver from Debian (scripts/setup-browser.sh, for the counter app's browser test), then
# tests. The examples run too, so they cannot rot.
test:
	./scripts/setup-ort.sh
	./scripts/setup-browser.sh
	cargo test --workspace
	$(MAKE) --no-print-directory examples

# Built with the whole workspace's features (what `cargo test --workspace` built), then run:
# `cargo run -p CRATE --example` would resolve features for one crate and rebuild.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
examples:
	./scripts/setup-ort.sh
	cargo build --quiet --workspace --all-targets
	$(TARGET_DIR)/debug/examples/encrypted_match
	$(TARGET_DIR)/debug/examples/local_match
	$(TARGET_DIR)/debug/examples/office_client
	$(TARGET_DIR)/debug/examples/custody_setup

# The benchmarks of docs/crypto.md and docs/face.md (release build).
bench-crypto:
	cargo run --release -p tabir-cli -- bench crypto --pairs 200 --templates 32

bench-face:
	./scripts/setup-ort.sh
	cargo run --release -p tabir-cli -- bench face --runs 100

bench-server:
	cargo run --release -p tabir-cli -- bench server --requests 400 --concurrency 4

# Every decoder fuzzed for a bounded time (FUZZ_SECONDS each, default 60) with cargo-fuzz on
# the stable toolchain (RUSTC_BOOTSTRAP=1); fails if any target crashes. See fuzz/README.md.
fuzz:
	./scripts/fuzz.sh
