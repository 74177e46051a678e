//! What the counter app and the auditor page share as local web apps: where they may listen,
//! and the guard in front of their APIs. Each serves a page with a per-run token written into
//! it; every API call must carry that token in a header (another site open in the same browser
//! cannot read the page, so cannot send it), and every request must name this machine in its
//! Host header (a site that rebinds its DNS name to 127.0.0.1 sends its own name).

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rand::RngCore;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

/// Refuse an address the page cannot be guarded on: an unspecified one (requests must name
/// the address), or one off this machine without `allow_remote`.
pub fn check_listen(listen: SocketAddr, allow_remote: bool, what: &str) -> Result<(), String> {
    if listen.ip().is_unspecified() {
        return Err(format!(
            "{listen} names no address: give the one the page will be opened at (127.0.0.1, or \
             this machine's own address with --allow-remote); the {what} checks that requests \
             name it"
        ));
    }
    if !listen.ip().is_loopback() && !allow_remote {
        return Err(format!(
            "{listen} is not a loopback address: the {what} serves this machine only (use \
             127.0.0.1), or pass --allow-remote behind your own access control"
        ));
    }
    Ok(())
}

/// The token and address one page is guarded with.
pub struct Guard {
    /// The header carrying the token.
    header: &'static str,
    token: String,
    address: SocketAddr,
    /// What to tell a refused caller to open or reload ("the counter app").
    what: &'static str,
}

impl Guard {
    /// A fresh random token for the page served on `address`.
    pub fn new(header: &'static str, address: SocketAddr, what: &'static str) -> Arc<Self> {
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Arc::new(Self {
            header,
            token: tabir_proto::hex::encode(&bytes),
            address,
            what,
        })
    }

    /// The token to write into the page.
    pub fn token(&self) -> &str {
        &self.token
    }

    fn host_allowed(&self, host: &str) -> bool {
        let port = self.address.port();
        [
            self.address.to_string(),
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            format!("[::1]:{port}"),
        ]
        .iter()
        .any(|allowed| allowed == host)
    }

    fn token_matches(&self, sent: &[u8]) -> bool {
        let expected = self.token.as_bytes();
        // Length first, then every byte (no early exit on the first difference).
        sent.len() == expected.len()
            && sent
                .iter()
                .zip(expected)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

fn refused(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// Middleware for every route: the Host header must name this machine.
pub async fn require_local_host(
    State(guard): State<Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if guard.host_allowed(host) {
        next.run(request).await
    } else {
        refused(
            StatusCode::MISDIRECTED_REQUEST,
            "wrong_host",
            format!("open the {} at the address it printed", guard.what),
        )
    }
}

/// Middleware for the API routes: the page's token must come with the call.
pub async fn require_token(
    State(guard): State<Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    let sent = request
        .headers()
        .get(guard.header)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if guard.token_matches(sent) {
        next.run(request).await
    } else {
        refused(
            StatusCode::FORBIDDEN,
            "bad_token",
            format!("reload the {} page", guard.what),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_tokens() {
        let guard = Guard::new(
            "x-test",
            "127.0.0.1:8080".parse().unwrap_or_else(|_| unreachable!()),
            "test page",
        );
        assert!(guard.host_allowed("127.0.0.1:8080"));
        assert!(guard.host_allowed("localhost:8080"));
        assert!(!guard.host_allowed("evil.example:8080"));
        assert!(!guard.host_allowed("localhost:8081"));
        assert!(guard.token_matches(guard.token().as_bytes()));
        assert!(!guard.token_matches(b""));
        assert!(!guard.token_matches(&guard.token().as_bytes()[1..]));
        let listen = |text: &str| {
            text.parse::<SocketAddr>()
                .unwrap_or_else(|_| unreachable!())
        };
        assert!(check_listen(listen("127.0.0.1:0"), false, "x").is_ok());
        assert!(check_listen(listen("0.0.0.0:8080"), true, "x").is_err());
        assert!(check_listen(listen("192.0.2.1:8080"), false, "x").is_err());
        assert!(check_listen(listen("192.0.2.1:8080"), true, "x").is_ok());
    }
}
