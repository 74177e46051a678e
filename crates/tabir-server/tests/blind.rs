//! The server is blind by construction: its build contains neither the face pipeline nor the
//! client side of tabir-crypto (key generation, encryption, decryption).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

#[test]
fn the_server_build_has_no_face_pipeline_and_no_decryption() {
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--package",
            "tabir-server",
            "--edges",
            "normal,build,features",
            "--prefix",
            "none",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8(output.stdout).unwrap();
    assert!(
        tree.contains("tabir-crypto"),
        "the tree was not read: {tree}"
    );
    for line in tree.lines() {
        assert!(
            !line.starts_with("tabir-face"),
            "the server depends on {line}"
        );
        assert!(
            !line.starts_with("tabir-client"),
            "the server depends on {line}"
        );
        assert!(!line.starts_with("ort "), "the server depends on {line}");
        assert!(
            !line.starts_with("tabir-crypto feature \"client\""),
            "the server build enables key generation and decryption: {line}"
        );
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
