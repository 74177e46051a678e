//! The server is blind by construction, and the check is on what ships: the `tabir-server`
//! binary. Its dependency tree has no device code (no tabir-device-crypto: no key generation,
//! encryption or decryption; no face pipeline; no ONNX Runtime; no client SDK), and the built
//! binary contains none of their code. The shared crates that carry no crypto build without
//! tfhe.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

/// `cargo tree` of `package`'s normal and build dependencies, one crate per line.
fn tree(package: &str) -> String {
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--package",
            package,
            "--edges",
            "normal,build,features",
            "--prefix",
            "none",
            "--target",
            "all",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

const DEVICE_CRATES: &[&str] = &["tabir-device-crypto", "tabir-face", "tabir-client", "ort "];

#[test]
fn the_server_binary_depends_on_no_device_code() {
    let tree = tree("tabir-server");
    assert!(
        tree.contains("tabir-crypto") && tree.contains("clap"),
        "the binary's tree was not read: {tree}"
    );
    for line in tree.lines() {
        for device in DEVICE_CRATES {
            assert!(
                !line.starts_with(device),
                "the server binary depends on {line}"
            );
        }
    }
}

#[test]
fn the_built_server_binary_contains_no_key_generation_encryption_or_decryption() {
    let binary = std::fs::read(env!("CARGO_BIN_EXE_tabir-server")).unwrap();
    let contains = |needle: &str| {
        binary
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
    };
    // The matcher is in (a sanity check that symbols are searchable)...
    assert!(contains("tabir_crypto"), "no symbols to search");
    // ...and nothing that makes or uses a secret key: neither our device crates (by symbol or
    // by source path) nor tfhe's key generation, encryption or decryption.
    for needle in [
        "tabir_device_crypto",
        "tabir-device-crypto/src",
        "tabir_face",
        "tabir_client",
        "generate_binary_glwe_secret_key",
        "generate_binary_lwe_secret_key",
        "encrypt_glwe_ciphertext",
        "encrypt_seeded_glwe_ciphertext",
        "decrypt_lwe_ciphertext",
        "decrypt_glwe_ciphertext",
        "generate_seeded_lwe_bootstrap_key",
    ] {
        assert!(!contains(needle), "the server binary contains {needle}");
    }
}

#[test]
fn protocol_and_store_build_without_tfhe() {
    for package in ["tabir-proto", "tabir-store"] {
        let tree = tree(package);
        assert!(tree.contains(package), "{package}: {tree}");
        for line in tree.lines() {
            assert!(
                !line.starts_with("tfhe") && !line.starts_with("tabir-crypto"),
                "{package} depends on {line}"
            );
        }
    }
}

#[test]
fn docs_protocol_lists_every_error_code() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/protocol.md"),
    )
    .unwrap();
    for code in tabir_proto::ErrorCode::ALL {
        let row = format!("| {} | `{}` |", code.status(), code.name());
        assert!(doc.contains(&row), "docs/protocol.md lacks the row {row}");
    }
}
