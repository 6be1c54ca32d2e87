//! The page shell every console page shares: the head, a skip link, the navigation, sign-out,
//! and the main region; and the pages for errors.
//!
//! **Owns** markup common to pages. **Must not touch** data: pages pass what to show.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use crate::api::Failure;
use crate::session::Session;

/// The console's sections, in the navigation's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Champions,
    Audit,
    Challenges,
    Tune,
    Leaderboards,
    Plugins,
    None,
}

const SECTIONS: [(Nav, &str, &str); 7] = [
    (Nav::Overview, "/console/", "Overview"),
    (Nav::Champions, "/console/champions", "Champions"),
    (Nav::Audit, "/console/audit", "Audit"),
    (Nav::Challenges, "/console/challenges", "Challenges"),
    (Nav::Tune, "/console/tune", "Tune"),
    (Nav::Leaderboards, "/console/leaderboards", "Leaderboards"),
    (Nav::Plugins, "/console/plugins", "Plugins"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Plaudit console" }
            link rel="stylesheet" href="/console/assets/console.css";
            // No icon to fetch (the browser would ask for /favicon.ico).
            link rel="icon" href="data:,";
        }
    }
}

/// A signed-in page: `title` as its heading, `body` under it.
pub fn page(session: &Session, nav: Nav, title: &str, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    p.brand { "Plaudit console" span.org { (session.org) } }
                    nav aria-label="Sections" {
                        ul {
                            @for (section, href, label) in SECTIONS {
                                li {
                                    @if section == nav {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    form.signout method="post" action="/console/sign-out" {
                        input type="hidden" name="csrf" value=(session.csrf);
                        button type="submit" { "Sign out" }
                    }
                }
                main #main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    Html(markup.into_string()).into_response()
}

/// A page for someone not signed in (the sign-in form, an error).
pub fn bare(status: StatusCode, title: &str, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare {
                main #main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    (status, Html(markup.into_string())).into_response()
}

/// An error page.
pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    bare(status, title, html! { p.error role="alert" { (message) } p { a href="/console/" { "Back to the console" } } })
}

/// What a page shows where the API refused a read: the status and its message.
pub fn failure(f: &Failure) -> Markup {
    html! {
        p.error role="alert" {
            "The API answered " (f.status) " (" code { (f.code) } "): " (f.message)
            @if let Some(field) = &f.field { " — field " code { (field) } }
        }
    }
}

/// A page for a failed read of a signed-in page.
pub fn failed(session: &Session, nav: Nav, title: &str, f: &Failure) -> Response {
    let mut response = page(session, nav, title, failure(f));
    *response.status_mut() = StatusCode::from_u16(f.status).unwrap_or(StatusCode::BAD_GATEWAY);
    response
}

/// A number with thin spaces between thousands (`12 345`), as people read them.
pub fn num(n: impl Into<f64>) -> String {
    let n: f64 = n.into();
    if n.fract() != 0.0 {
        return format!("{n:.1}");
    }
    let digits = format!("{}", n.abs() as u64);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202F}');
        }
        out.push(c);
    }
    if n < 0.0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(num(0), "0");
        assert_eq!(num(999), "999");
        assert_eq!(num(12345), "12\u{202F}345");
        assert_eq!(num(-1234567), "-1\u{202F}234\u{202F}567");
        assert_eq!(num(3.25), "3.2");
    }
}
