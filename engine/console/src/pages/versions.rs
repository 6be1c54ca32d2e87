//! Versions: every published rule set, what changed between two of them, publishing an earlier
//! one again (a rollback: a new version with its text), and applying the rule set in force to
//! the history so far (additive or rebase), its preview first.
//!
//! Reads `rules/versions` and `rules/versions/{n}`; changes with `PUT rules` and
//! `POST rules/apply`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Change, f, s};
use crate::Console;
use crate::api::org_path;
use crate::layout::{self, Nav, num};
use crate::session::SignedIn;

#[derive(Debug, Default, Deserialize)]
pub struct Params {
    a: Option<u64>,
    b: Option<u64>,
    published: Option<u64>,
}

/// `GET /console/versions?a=&b=&published=`.
pub async fn page(
    State(console): State<Arc<Console>>,
    SignedIn(session): SignedIn,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    let p: Params = super::query(raw);
    let listing = match console.api.get(&session, org_path(&session, "rules/versions")).await {
        Ok(v) => v,
        Err(e) => return layout::failed(&session, Nav::Tune, "Versions", &e),
    };
    let current = listing["current"].as_u64().unwrap_or(0);
    let versions = listing["versions"].as_array().cloned().unwrap_or_default();
    let (a, b) = (p.a.unwrap_or(current.saturating_sub(1).max(1)), p.b.unwrap_or(current));
    let compared = if a != b && a >= 1 && b >= 1 {
        let (old, new) = tokio::join!(
            console.api.get(&session, org_path(&session, &format!("rules/versions/{a}"))),
            console.api.get(&session, org_path(&session, &format!("rules/versions/{b}"))),
        );
        Some(old.and_then(|old| new.map(|new| changes(&old, &new))))
    } else {
        None
    };
    let body = html! {
        @if let Some(n) = p.published { p.notice role="status" { "Published version " (n) ": in force from the next moment." } }
        div.scroll {
            table #versions {
                thead { tr { th scope="col" class="n" { "Version" } th scope="col" { "In force after record" } th scope="col" { "Format" } th scope="col" { "" } } }
                tbody {
                    @for v in versions.iter().rev() {
                        @let n = v["version"].as_u64().unwrap_or(0);
                        tr data-version=(n) {
                            td.n { (n) @if n == current { " (in force)" } }
                            td { (num(f(&v["after"]))) }
                            td { (s(&v["format"])) }
                            td {
                                @if n != current {
                                    form.inline method="post" action="/console/versions/republish" {
                                        input type="hidden" name="csrf" value=(session.csrf);
                                        input type="hidden" name="version" value=(n);
                                        button type="submit" { "Publish version " (n) " again" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="compare-h" {
            h2 #compare-h { "What changed" }
            form.filter method="get" action="/console/versions" {
                label for="a" { "From version" }
                input #a name="a" type="number" min="1" max=(current) value=(a);
                label for="b" { "to version" }
                input #b name="b" type="number" min="1" max=(current) value=(b);
                button type="submit" { "Compare" }
            }
            @match &compared {
                None => p { "Choose two different versions." },
                Some(Err(e)) => (layout::failure(e)),
                Some(Ok(list)) => (change_list(list)),
            }
        }
        section aria-labelledby="apply-h" {
            h2 #apply-h { "Apply version " (current) " to the history so far" }
            p { "Additive: what the rule set in force would have given, added now; nothing is taken back. "
                "Rebase: everyone's state becomes what the rule set in force gives over the whole history. "
                "You see the preview first." }
            form.inline method="post" action="/console/versions/apply" {
                input type="hidden" name="csrf" value=(session.csrf);
                input type="hidden" name="version" value=(current);
                input type="hidden" name="preview" value="true";
                label for="mode" { "Mode" }
                select #mode name="mode" { option value="additive" { "additive" } option value="rebase" { "rebase" } }
                button type="submit" { "Preview the application" }
            }
        }
    };
    layout::page(&session, Nav::Tune, "Versions", body)
}

/// Every place where `old` and `new` differ: its path, and the value before and after.
pub fn changes(old: &Value, new: &Value) -> Vec<(String, Option<Value>, Option<Value>)> {
    fn walk(
        path: &str,
        old: Option<&Value>,
        new: Option<&Value>,
        out: &mut Vec<(String, Option<Value>, Option<Value>)>,
    ) {
        match (old, new) {
            (Some(Value::Object(a)), Some(Value::Object(b))) => {
                let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
                for k in keys {
                    let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                    walk(&p, a.get(k), b.get(k), out);
                }
            }
            (Some(Value::Array(a)), Some(Value::Array(b))) if a.iter().chain(b).all(Value::is_object) => {
                for i in 0..a.len().max(b.len()) {
                    walk(&format!("{path}[{i}]"), a.get(i), b.get(i), out);
                }
            }
            (a, b) if a != b => out.push((path.to_string(), a.cloned(), b.cloned())),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", Some(old), Some(new), &mut out);
    out
}

fn change_list(list: &[(String, Option<Value>, Option<Value>)]) -> Markup {
    let show = |v: &Option<Value>| v.as_ref().map_or_else(|| "(none)".to_string(), |v| v.to_string());
    html! {
        @if list.is_empty() { p #changes { "The two versions are the same rule set." } } @else {
            div.scroll {
                table #changes {
                    thead { tr { th scope="col" { "Where" } th scope="col" { "Before" } th scope="col" { "After" } } }
                    tbody { @for (path, before, after) in list {
                        tr { th scope="row" { code { (path) } } td { code { (show(before)) } } td { code { (show(after)) } } }
                    } }
                }
            }
        }
    }
}

/// `POST /console/versions/republish`: publishes an earlier version's text again (a rollback).
pub async fn republish(State(console): State<Arc<Console>>, Change { session, form }: Change) -> Response {
    let Some(n) = form.get("version").and_then(|v| v.parse::<u64>().ok()) else {
        return layout::error_page(StatusCode::BAD_REQUEST, "No version", "Choose a version to publish again.");
    };
    let text = match console.api.get(&session, org_path(&session, &format!("rules/versions/{n}"))).await {
        Ok(t) => t,
        Err(e) => return layout::failed(&session, Nav::Tune, "Versions", &e),
    };
    match console.api.send(&session, Method::PUT, org_path(&session, "rules"), Some(&text)).await {
        Ok(p) => {
            Redirect::to(&format!("/console/versions?published={}", p["version"].as_u64().unwrap_or(0))).into_response()
        }
        Err(e) => layout::failed(&session, Nav::Tune, "Versions", &e),
    }
}

/// `POST /console/versions/apply`: with `preview`, what applying the rule set in force to the
/// history would change (and a button to do it); without, does it.
pub async fn apply(State(console): State<Arc<Console>>, Change { session, form }: Change) -> Response {
    let mode = match form.get("mode") {
        Some(m @ ("additive" | "rebase")) => m.to_string(),
        _ => return layout::error_page(StatusCode::BAD_REQUEST, "No mode", "Choose additive or rebase."),
    };
    let version: u64 = form.get("version").and_then(|v| v.parse().ok()).unwrap_or(0);
    let preview = form.get("preview") == Some("true");
    let request = json!({"mode": mode, "version": version, "preview": preview, "limit": 20});
    match console.api.send(&session, Method::POST, org_path(&session, "rules/apply"), Some(&request)).await {
        Err(e) => layout::failed(&session, Nav::Tune, "Apply to history", &e),
        Ok(answer) if preview => {
            let body = html! {
                p { "Applying version " (version) " (" (mode) ") to the history so far would change this:" }
                (super::tune::diff_view(&answer))
                form.inline method="post" action="/console/versions/apply" {
                    input type="hidden" name="csrf" value=(session.csrf);
                    input type="hidden" name="version" value=(version);
                    input type="hidden" name="mode" value=(mode);
                    button type="submit" { "Apply it" }
                }
                p { a href="/console/versions" { "Back to the versions, changing nothing" } }
            };
            layout::page(&session, Nav::Tune, "Apply to history: preview", body)
        }
        Ok(done) => {
            let body = html! {
                p.notice role="status" { "Applied version " (f(&done["version"])) " (" (s(&done["mode"])) ") to the history up to record "
                    (num(f(&done["after"]))) ": " (num(f(&done["effects"]))) " effects." }
                p { a href="/console/versions" { "Back to the versions" } }
            };
            layout::page(&session, Nav::Tune, "Applied to history", body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_listed_by_where_they_are() {
        let old = json!({"challenge": [{"id": "c", "goal": {"moments": 5}}], "guard": {"max_moments": 40}});
        let new = json!({"challenge": [{"id": "c", "goal": {"moments": 8}}], "levels": {"x": 1}});
        let found = changes(&old, &new);
        let paths: Vec<&str> = found.iter().map(|(p, _, _)| p.as_str()).collect();
        assert_eq!(paths, vec!["challenge[0].goal.moments", "guard", "levels"]);
        assert_eq!(found[0].1, Some(json!(5)));
        assert_eq!(found[0].2, Some(json!(8)));
        assert!(changes(&old, &old).is_empty());
    }
}
