//! The counter app's page, script and style, compiled into the binary (no CDN: the app works
//! with no network but the link to the Tabir server).

const PAGE: &str = include_str!("../../assets/counter.html");
const SCRIPT: &str = include_str!("../../assets/counter.js");
const STYLE: &str = include_str!("../../assets/counter.css");

/// The page with this run's API token and the default language filled in. The token is the
/// only thing the service writes into the page.
pub fn page(token: &str, language: &str) -> String {
    PAGE.replace("{{TOKEN}}", token)
        .replace("{{LANGUAGE}}", language)
}

/// A static asset by name: (content type, body).
pub fn file(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "counter.js" => Some(("text/javascript; charset=utf-8", SCRIPT)),
        "counter.css" => Some(("text/css; charset=utf-8", STYLE)),
        _ => None,
    }
}
