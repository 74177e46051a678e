//! Just enough of the W3C WebDriver protocol to drive Debian's Chromium through chromedriver:
//! start a session (headless, with a fake camera fed from a Y4M file), open a page, press keys,
//! run a script, take a screenshot. Both programs come from `scripts/setup-browser.sh`.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Where chromium and chromedriver are, or why the browser tests cannot run.
pub fn available() -> Result<(PathBuf, PathBuf), String> {
    let find = |name: &str, default: &str| -> Option<PathBuf> {
        let default = PathBuf::from(default);
        if default.is_file() {
            return Some(default);
        }
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
    };
    match (
        find("chromium", CHROMIUM),
        find("chromedriver", CHROMEDRIVER),
    ) {
        (Some(browser), Some(driver)) => Ok((browser, driver)),
        _ => Err("chromium and chromedriver are not installed (scripts/setup-browser.sh installs Debian's)".into()),
    }
}

/// A chromedriver process on a free port, killed when dropped.
pub struct Driver {
    child: Child,
    pub url: String,
    browser: PathBuf,
}

impl Driver {
    pub fn start(driver: &Path, browser: &Path) -> Self {
        let port = free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = ureq::get(&format!("{url}/status")).call() {
                let status: Value = response.into_json().unwrap_or_default();
                if status["value"]["ready"] == json!(true) {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver never became ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            child,
            url,
            browser: browser.to_owned(),
        }
    }

    /// A headless Chromium whose camera plays `camera` (a Y4M file, looped).
    pub fn session(&self, camera: &Path) -> Session {
        let args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-gpu".to_owned(),
            "--window-size=1100,1000".to_owned(),
            "--use-fake-ui-for-media-stream".to_owned(),
            "--use-fake-device-for-media-stream".to_owned(),
            format!("--use-file-for-fake-video-capture={}", camera.display()),
        ];
        let capabilities = json!({
            "capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": self.browser, "args": args},
            }}
        });
        let answer = post(&format!("{}/session", self.url), &capabilities);
        let id = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_owned();
        Session {
            base: format!("{}/session/{id}", self.url),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn post(url: &str, body: &Value) -> Value {
    match ureq::post(url).send_json(body.clone()) {
        Ok(response) => response.into_json().unwrap_or_default(),
        Err(ureq::Error::Status(code, response)) => {
            let text = response.into_string().unwrap_or_default();
            panic!("WebDriver {url} answered {code}: {text}")
        }
        Err(e) => panic!("WebDriver {url}: {e}"),
    }
}

/// One browser window.
pub struct Session {
    base: String,
}

impl Session {
    pub fn open(&self, url: &str) {
        post(&format!("{}/url", self.base), &json!({ "url": url }));
    }

    /// Run `script` (a function body; `arguments` as usual) and return its value.
    pub fn eval(&self, script: &str) -> Value {
        post(
            &format!("{}/execute/sync", self.base),
            &json!({"script": script, "args": []}),
        )["value"]
            .clone()
    }

    /// Press keys on whatever has the focus, as a person would: each key down and up.
    /// WebDriver names special keys with private-use characters (Enter is \u{E007}).
    pub fn press(&self, keys: &str) {
        let mut actions = Vec::new();
        for key in keys.chars() {
            actions.push(json!({"type": "keyDown", "value": key.to_string()}));
            actions.push(json!({"type": "keyUp", "value": key.to_string()}));
        }
        post(
            &format!("{}/actions", self.base),
            &json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}),
        );
    }

    /// Wait until `script` returns something other than null/false; returns it.
    pub fn wait_for(&self, script: &str, timeout: Duration, what: &str) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.eval(script);
            if !(value.is_null() || value == json!(false)) {
                return value;
            }
            if Instant::now() > deadline {
                let page = self.eval("return document.body ? document.body.innerText : ''");
                panic!("timed out waiting for {what}; the page shows:\n{page}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A PNG of the window, written to `path`.
    pub fn screenshot(&self, path: &Path) {
        let answer = ureq::get(&format!("{}/screenshot", self.base))
            .call()
            .expect("screenshot")
            .into_json::<Value>()
            .expect("screenshot JSON");
        let encoded = answer["value"].as_str().expect("screenshot data");
        std::fs::write(path, decode_base64(encoded)).expect("write the screenshot");
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = ureq::delete(&self.base).call();
    }
}

fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0);
    for c in text.bytes().filter_map(value) {
        // Only the bits not yet written matter (at most 14): keep 24 (no overflow).
        buffer = ((buffer << 6) | c) & 0x00FF_FFFF;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}
