# Tabir: the commands a new user runs. `make test` is what CI runs.
.PHONY: test bench-crypto

test:
	cargo test --workspace

# The crypto benchmark of docs/crypto.md (release build, a few minutes on two cores).
bench-crypto:
	cargo run --release -p tabir-cli -- bench crypto --pairs 200 --templates 32
