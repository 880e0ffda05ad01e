//! The timeline as a web page: one self-contained HTML file (`export --format html`),
//! and the same page fed from the `ui` server's JSON endpoints.
//!
//! The CSS and JS are files beside this one, embedded at compile time and inlined in
//! every page: nothing is fetched from a network, so an exported file opens offline.

use super::model::ViewModel;

const CSS: &str = include_str!("page.css");
const JS: &str = include_str!("page.js");

/// The timeline with its model embedded: the exported file.
pub fn page(model: &ViewModel) -> String {
    let json = serde_json::to_string(model).unwrap_or_else(|_| "null".into());
    shell(
        &model.session.name,
        "",
        &format!(
            r#"<script id="model" type="application/json">{}</script>"#,
            script_safe(&json)
        ),
    )
}

/// The timeline that loads its model from `api` (`/api/sessions/NAME`) and follows it
/// as the session grows: the `ui` view of a session.
pub fn live_page(name: &str, api: &str) -> String {
    shell(name, &format!(r#" data-api="{}""#, escape(api)), "")
}

fn shell(name: &str, body_attrs: &str, data: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>graphtape: {title}</title>
<style>{CSS}</style>
</head>
<body{body_attrs}>
<header>
<h1>graphtape <span id="session-name">{title}</span><span class="sub" id="session-sub"></span></h1>
<label>scale <select id="scale"><option value="even">evenly spaced</option><option value="time">true time</option></select></label>
<span><button id="zoom-out" title="zoom out (-)" aria-label="zoom out">−</button> <span id="zoom-level">100%</span> <button id="zoom-in" title="zoom in (+)" aria-label="zoom in">+</button></span>
<label>call <select id="call-filter"><option value="">all calls</option></select></label>
<input id="search" type="search" placeholder="search ( / )" aria-label="search events">
<span id="count"></span><span id="live"></span>
</header>
<main>
<section id="diagram" aria-label="sequence diagram: Bot, graphtape, Graph; arrows move with up and down, Enter opens">
<div id="lanes"></div>
<div id="scroller" tabindex="-1"><div id="canvas"></div></div>
<div id="marks"></div>
</section>
<aside id="detail" hidden aria-live="polite"></aside>
</main>
{data}
<script>{JS}</script>
</body>
</html>
"#,
        title = escape(name)
    )
}

/// Text for HTML content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// JSON that cannot end its `<script>` element: `<` only occurs inside strings, where
/// `\u003c` means the same.
fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::model::build;
    use crate::inspect::testutil::{seed_flow, session};

    #[test]
    fn the_page_is_self_contained_and_script_safe() {
        let mut info = session();
        info.name = "</script><b>x".into();
        let exchanges = seed_flow();
        let html = page(&build(&info, &exchanges, &[], None));
        assert!(!html.contains("</script><b>"));
        assert!(html.contains("&lt;/script&gt;&lt;b&gt;x"));
        assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
        let start = html
            .find(r#"<script id="model" type="application/json">"#)
            .unwrap();
        let rest = &html[start..];
        let json = &rest[rest.find('>').unwrap() + 1..rest.find("</script>").unwrap()];
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["session"]["name"], "</script><b>x");
        assert_eq!(v["events"].as_array().unwrap().len(), exchanges.len() * 2);
    }

    #[test]
    fn the_live_page_names_its_api() {
        let html = live_page("a\"b", "/api/sessions/a%22b");
        assert!(html.contains(r#"data-api="/api/sessions/a%22b""#));
        assert!(!html.contains(r#"id="model""#));
    }
}
