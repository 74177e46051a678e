# Tabir: the commands a new user runs. `make test` is what CI runs.
.PHONY: demo test bench-crypto bench-face

# Tabir end to end on this machine: key domain, local server, device, enrol, verify (match and
# no match), identify, delete, audit log; each step with its time and bytes on the wire.
demo:
	./scripts/demo.sh

# ONNX Runtime's library comes from the pinned PyPI wheel (scripts/setup-ort.sh), then tests.
test:
	./scripts/setup-ort.sh
	cargo test --workspace

# The benchmarks of docs/crypto.md and docs/face.md (release build).
bench-crypto:
	cargo run --release -p tabir-cli -- bench crypto --pairs 200 --templates 32

bench-face:
	./scripts/setup-ort.sh
	cargo run --release -p tabir-cli -- bench face --runs 100
