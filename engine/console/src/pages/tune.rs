//! Tune: change a challenge's goal, window and match, and a rule's awards and caps; preview the
//! change on the organisation's real history (the what-if), then publish it as a new version.
//!
//! The form's fields are named by their place in the rule set (`challenge[0].goal.moments`,
//! `rule[2].award[0].amount`), the same paths the API names in its errors, so a refusal is shown
//! next to the field it names. A candidate is the rule set in force (as JSON) with the form's
//! values set; the preview is `POST rules/simulate` of it, the publication `PUT rules`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde_json::{Value, json};

use super::{Change, Form, f, s};
use crate::Console;
use crate::api::{Failure, org_path};
use crate::chart::{Series, bars};
use crate::layout::{self, Nav, num};
use crate::session::{Session, SignedIn};

/// Windows a challenge or a cap may have.
const WINDOWS: [&str; 4] = ["hour", "day", "week", "month"];

/// `GET /console/tune`: the form over the rule set in force.
pub async fn page(State(console): State<Arc<Console>>, SignedIn(session): SignedIn) -> Response {
    match current(&console, &session).await {
        Err(e) => layout::failed(&session, Nav::Tune, "Tune", &e),
        Ok((rules, version)) => {
            layout::page(&session, Nav::Tune, "Tune", tune_form(&session, &rules, version, &[], None))
        }
    }
}

/// The rule set in force as JSON, and its version.
async fn current(console: &Console, session: &Session) -> Result<(Value, u64), Failure> {
    let (rules, versions) = tokio::join!(
        console.api.get(session, org_path(session, "rules")),
        console.api.get(session, org_path(session, "rules/versions")),
    );
    Ok((rules?, versions?["current"].as_u64().unwrap_or(0)))
}

/// What went wrong with a field of the form: its path and the message.
type FieldError = (String, String);

/// The id of the input for `path` (`challenge[0].goal.moments` -> `f-challenge-0-goal-moments`).
fn input_id(path: &str) -> String {
    let mut id = String::from("f-");
    for c in path.chars() {
        match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' => id.push(c),
            ']' => {}
            _ => id.push('-'),
        }
    }
    id
}

/// A labelled input for `path` with `value`, and the error that names it if any.
fn field(path: &str, label: &str, value: &str, kind: &str, errors: &[FieldError]) -> Markup {
    let id = input_id(path);
    let error = errors.iter().find(|(p, _)| p == path).map(|(_, m)| m.as_str());
    html! {
        div.field.invalid[error.is_some()] {
            label for=(id) { (label) }
            @if kind == "number" {
                input id=(id) name=(path) type="number" min="0" step="1" value=(value)
                    aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| format!("{id}-error"))];
            } @else {
                input id=(id) name=(path) type="text" value=(value)
                    aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| format!("{id}-error"))];
            }
            @if let Some(message) = error { p.field-error id=(format!("{id}-error")) role="alert" { (message) } }
        }
    }
}

/// A window's choice; with `none` (a challenge without one: time-boxed by `from` and `until`),
/// an empty choice that leaves it so.
fn window_select(path: &str, label: &str, value: &str, none: Option<&str>) -> Markup {
    let id = input_id(path);
    html! {
        div.field {
            label for=(id) { (label) }
            select id=(id) name=(path) {
                @if let Some(none) = none { option value="" selected[value.is_empty()] { (none) } }
                @for w in WINDOWS { option value=(w) selected[w == value] { (w) } }
            }
        }
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// The form over `rules`: every challenge's goal, window and kinds matched, every rule's awards
/// and cap. `errors` are shown at their fields, `general` above the form.
fn tune_form(session: &Session, rules: &Value, version: u64, errors: &[FieldError], general: Option<&str>) -> Markup {
    let challenges = rules["challenge"].as_array().cloned().unwrap_or_default();
    let rules_list = rules["rule"].as_array().cloned().unwrap_or_default();
    html! {
        p.lede { "Version " (version) " is in force. Change what you need, then preview it on the real history; nothing changes until you publish. "
            a href="/console/versions" { "Versions, rollback and applying to history" } }
        @if let Some(message) = general { p.error role="alert" #form-error { (message) } }
        form.tune method="post" action="/console/tune/preview" {
            input type="hidden" name="csrf" value=(session.csrf);
            input type="hidden" name="version" value=(version);
            fieldset {
                legend { "Challenges" }
                @for (i, c) in challenges.iter().enumerate() {
                    fieldset.item {
                        legend { (c["name"].as_str().unwrap_or(s(&c["id"]))) " " code { (s(&c["id"])) } }
                        (field(&format!("challenge[{i}].goal.moments"), "Moments to complete", &text_of(&c["goal"]["moments"]), "number", errors))
                        (field(&format!("challenge[{i}].goal.distinct_teams"), "Other teams to meet", &text_of(&c["goal"]["distinct_teams"]), "number", errors))
                        (field(&format!("challenge[{i}].goal.distinct_counterparts"), "Different people to meet", &text_of(&c["goal"]["distinct_counterparts"]), "number", errors))
                        (window_select(&format!("challenge[{i}].window"), "Window", s(&c["window"]), Some("none: from and until")))
                        (field(&format!("challenge[{i}].match.kind"), "Moment kinds (comma-separated; empty for any)", &text_of(&c["match"]["kind"]), "text", errors))
                    }
                }
            }
            fieldset {
                legend { "Rules" }
                @for (j, r) in rules_list.iter().enumerate() {
                    fieldset.item {
                        legend { (r["description"].as_str().unwrap_or(s(&r["id"]))) " " code { (s(&r["id"])) } }
                        @for (k, a) in r["award"].as_array().into_iter().flatten().enumerate() {
                            (field(&format!("rule[{j}].award[{k}].amount"), &format!("Award {} to the {}", s(&a["currency"]), s(&a["to"])), &text_of(&a["amount"]), "number", errors))
                        }
                        (field(&format!("rule[{j}].cap.times"), "At most this many times (empty: no cap)", &text_of(&r["cap"]["times"]), "number", errors))
                        (window_select(&format!("rule[{j}].cap.per"), "per", r["cap"]["per"].as_str().unwrap_or("day"), None))
                    }
                }
            }
            button type="submit" { "Preview on the history" }
        }
    }
}

/// One step of a field's path.
#[derive(Debug, PartialEq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn steps(path: &str) -> Option<Vec<Step<'_>>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if key.is_empty() {
            return None;
        }
        out.push(Step::Key(key));
        for index in rest.split('[').filter(|i| !i.is_empty()) {
            out.push(Step::Index(index.strip_suffix(']')?.parse().ok()?));
        }
    }
    Some(out)
}

/// Sets (or, with `None`, removes) the value at `path` of `doc`, making objects on the way;
/// false if the path leads through something that is not there.
fn set(doc: &mut Value, path: &str, value: Option<Value>) -> bool {
    let Some(steps) = steps(path) else { return false };
    let Some((last, ways)) = steps.split_last() else { return false };
    let mut at = doc;
    for step in ways {
        at = match step {
            Step::Key(k) => {
                let Some(object) = at.as_object_mut() else { return false };
                object.entry(k.to_string()).or_insert_with(|| json!({}))
            }
            Step::Index(i) => match at.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
        };
    }
    match (last, value) {
        (Step::Key(k), Some(v)) => match at.as_object_mut() {
            Some(o) => {
                o.insert(k.to_string(), v);
                true
            }
            None => false,
        },
        (Step::Key(k), None) => {
            if let Some(o) = at.as_object_mut() {
                o.remove(*k);
            }
            true
        }
        (Step::Index(i), Some(v)) => at.get_mut(*i).map(|slot| *slot = v).is_some(),
        (Step::Index(_), None) => false,
    }
}

/// The candidate: `rules` with the form's values set. Errors name the fields whose values are
/// not what they must be.
fn candidate(rules: &Value, form: &Form) -> Result<Value, Vec<FieldError>> {
    let mut doc = rules.clone();
    let mut errors = Vec::new();
    for (path, raw) in &form.0 {
        if path == "csrf" || path == "version" {
            continue;
        }
        let raw = raw.trim();
        let value = if path.ends_with(".moments")
            || path.ends_with(".distinct_teams")
            || path.ends_with(".distinct_counterparts")
            || path.ends_with(".amount")
            || path.ends_with(".times")
        {
            if raw.is_empty() {
                None
            } else {
                match raw.parse::<u64>() {
                    Ok(n) => Some(json!(n)),
                    Err(_) => {
                        errors.push((path.clone(), format!("{raw:?} is not a whole number of 0 or more")));
                        continue;
                    }
                }
            }
        } else if path.ends_with(".kind") {
            let kinds: Vec<Value> = raw.split(',').map(str::trim).filter(|k| !k.is_empty()).map(|k| json!(k)).collect();
            (!kinds.is_empty()).then_some(Value::Array(kinds))
        } else if path.ends_with(".window") && raw.is_empty() {
            None
        } else if path.ends_with(".window") || path.ends_with(".per") {
            if !WINDOWS.contains(&raw) {
                errors.push((path.clone(), format!("{raw:?} is not a window: {}", WINDOWS.join(", "))));
                continue;
            }
            Some(json!(raw))
        } else {
            errors.push((path.clone(), "the console has no such field".into()));
            continue;
        };
        // A cap's window alone is no cap: `per` is set only where there is a cap (below).
        if path.ends_with(".cap.per") {
            continue;
        }
        if !set(&mut doc, path, value) {
            errors.push((path.clone(), "no such place in the rule set (it changed since: reload)".into()));
        }
    }
    // Caps: with `times` (or points) they need `per`; without either they go.
    for (j, rule) in doc["rule"].as_array_mut().into_iter().flatten().enumerate() {
        let Some(cap) = rule.get_mut("cap").and_then(Value::as_object_mut) else { continue };
        if !cap.contains_key("times") && !cap.contains_key("points") {
            rule.as_object_mut().map(|r| r.remove("cap"));
            continue;
        }
        if let Some(per) = form.get(&format!("rule[{j}].cap.per")) {
            cap.insert("per".into(), json!(per));
        }
    }
    if let Some(empty) = doc["challenge"].as_array_mut() {
        for c in empty {
            if c["match"].as_object().is_some_and(|m| m.is_empty()) {
                c.as_object_mut().map(|o| o.remove("match"));
            }
        }
    }
    if errors.is_empty() { Ok(doc) } else { Err(errors) }
}

/// A refusal from the API as errors at fields (its `field`, as the form names them), or above
/// the form when it names none the form has.
fn place(failure: &Failure, form: &Form) -> (Vec<FieldError>, Option<String>) {
    let message = failure.message.split_once(": ").map_or(failure.message.as_str(), |(_, m)| m).to_string();
    match &failure.field {
        Some(field) => {
            // The form's field it names, or the closest one inside it (`challenge[0].goal`).
            let named = form.0.iter().map(|(k, _)| k).find(|k| *k == field || k.starts_with(&format!("{field}.")));
            match named {
                Some(k) => (vec![(k.clone(), message)], Some(format!("The rule set was refused: see {field}."))),
                None => (Vec::new(), Some(format!("The rule set was refused at {field}: {message}"))),
            }
        }
        None => (Vec::new(), Some(format!("The rule set was refused: {}", failure.message))),
    }
}

/// `POST /console/tune/preview`: the candidate's what-if over the whole history.
pub async fn preview(State(console): State<Arc<Console>>, Change { session, form }: Change) -> Response {
    let (rules, version) = match current(&console, &session).await {
        Ok(c) => c,
        Err(e) => return layout::failed(&session, Nav::Tune, "Tune", &e),
    };
    let stale = form.get("version").and_then(|v| v.parse::<u64>().ok()).is_some_and(|v| v != version);
    if stale {
        let message =
            format!("Version {version} was published since this form was opened: here it is; make the change again.");
        return layout::page(&session, Nav::Tune, "Tune", tune_form(&session, &rules, version, &[], Some(&message)));
    }
    let candidate = match candidate(&rules, &form) {
        Ok(c) => c,
        Err(errors) => {
            let page = tune_form(
                &session,
                &applied(&rules, &form),
                version,
                &errors,
                Some("Some values are not right: see the fields marked."),
            );
            return with_status(layout::page(&session, Nav::Tune, "Tune", page), StatusCode::UNPROCESSABLE_ENTITY);
        }
    };
    let path = org_path(&session, "rules/simulate?limit=20");
    match console.api.send(&session, Method::POST, &path, Some(&candidate)).await {
        Err(failure) => {
            let (errors, general) = place(&failure, &form);
            let page = tune_form(&session, &candidate, version, &errors, general.as_deref());
            with_status(layout::page(&session, Nav::Tune, "Tune", page), StatusCode::UNPROCESSABLE_ENTITY)
        }
        Ok(diff) => {
            let body = html! {
                section aria-labelledby="preview-h" {
                    h2 #preview-h { "Preview: this change over the whole history" }
                    (diff_view(&diff))
                    form.publish method="post" action="/console/tune/publish" {
                        input type="hidden" name="csrf" value=(session.csrf);
                        input type="hidden" name="version" value=(version);
                        input type="hidden" name="candidate" value=(candidate.to_string());
                        button type="submit" { "Publish as version " (version + 1) }
                    }
                }
                section aria-labelledby="edit-h" {
                    h2 #edit-h { "Change it further" }
                    (tune_form(&session, &candidate, version, &[], None))
                }
            };
            layout::page(&session, Nav::Tune, "Tune: preview", body)
        }
    }
}

/// `rules` with what can be set of the form's values (to show a form with errors as sent).
fn applied(rules: &Value, form: &Form) -> Value {
    let mut doc = rules.clone();
    for (path, raw) in &form.0 {
        if path != "csrf" && path != "version" {
            let value = raw.trim().parse::<u64>().map_or_else(|_| json!(raw.trim()), |n| json!(n));
            set(&mut doc, path, Some(value));
        }
    }
    doc
}

fn with_status(mut response: Response, status: StatusCode) -> Response {
    *response.status_mut() = status;
    response
}

/// A what-if's answer: completions, points, badges, levels and ranks before and after, and the
/// stakeholders most affected.
pub fn diff_view(diff: &Value) -> Markup {
    let pairs = |v: &Value| -> Vec<(String, f64, f64)> {
        v.as_object().into_iter().flatten().map(|(k, p)| (k.clone(), f(&p[0]), f(&p[1]))).collect()
    };
    let completions = pairs(&diff["completions"]);
    let totals = pairs(&diff["totals"]);
    let chart = |id: &str, title: &str, rows: &[(String, f64, f64)]| {
        let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        bars(
            id,
            title,
            &labels,
            &[
                Series::new("now", rows.iter().map(|r| r.1).collect()),
                Series::new("with the change", rows.iter().map(|r| r.2).collect()),
            ],
        )
    };
    let details = diff["details"].as_array().cloned().unwrap_or_default();
    html! {
        dl.summary #diff-summary {
            dt { "Records replayed" } dd data-key="records" { (num(f(&diff["records"]))) }
            dt { "Stakeholders" } dd data-key="stakeholders" { (num(f(&diff["stakeholders"]))) }
            dt { "Stakeholders whose state changes" } dd data-key="changed" { (num(f(&diff["changed"]))) }
            dt { "Badges gained" } dd data-key="badges_gained" { (num(f(&diff["badges_gained"]))) }
            dt { "Badges lost" } dd data-key="badges_lost" { (num(f(&diff["badges_lost"]))) }
            dt { "Level changes" } dd data-key="level_changes" { (num(f(&diff["level_changes"]))) }
            dt { "Rank changes" } dd data-key="rank_changes" { (num(f(&diff["rank_changes"]))) }
        }
        div.grid {
            div.card { (chart("completions", "Challenge completions, now and with the change", &completions)) }
            div.card { (chart("totals", "Points in each currency, now and with the change", &totals)) }
            div.card { (bars("badges", "Badges gained, lost and changed (tier or count) with the change",
                &["gained", "lost", "changed"].map(String::from),
                &[Series::new("badges", vec![f(&diff["badges_gained"]), f(&diff["badges_lost"]), f(&diff["badges_changed"])])])) }
        }
        h3 { "Most affected stakeholders" }
        @if details.is_empty() { p { "Nobody's state changes." } } @else {
            div.scroll {
                table #affected {
                    thead { tr { th scope="col" { "Stakeholder" } th scope="col" { "Points" } th scope="col" { "Badges" } th scope="col" { "Level" } } }
                    tbody {
                        @for d in &details {
                            @let who = s(&d["id"]);
                            tr data-stakeholder=(who) {
                                th scope="row" { a href={"/console/stakeholders/" (crate::api::enc(who))} { (who) } }
                                td { @for (c, now, then) in pairs(&d["currencies"]) { (c) " " (num(now)) " → " (num(then)) br; } }
                                td { @for (b, v) in d["badges"].as_object().into_iter().flatten() {
                                    (b) " " (v[0].as_str().unwrap_or("none")) " → " (v[1].as_str().unwrap_or("none")) br; } }
                                td { @if let Some(l) = d["level"].as_array() {
                                    (l.first().and_then(Value::as_str).unwrap_or("none")) " → " (l.get(1).and_then(Value::as_str).unwrap_or("none")) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `POST /console/tune/publish`: publishes the previewed candidate as a new version.
pub async fn publish(State(console): State<Arc<Console>>, Change { session, form }: Change) -> Response {
    let Some(candidate) = form.get("candidate").and_then(|c| serde_json::from_str::<Value>(c).ok()) else {
        return layout::error_page(StatusCode::BAD_REQUEST, "Nothing to publish", "Preview a change first.");
    };
    let previewed = form.get("version").and_then(|v| v.parse::<u64>().ok());
    if let Ok((_, version)) = current(&console, &session).await
        && previewed.is_some_and(|p| p != version)
    {
        let message = format!("Version {version} was published after this preview: preview the change again on it.");
        return layout::error_page(StatusCode::CONFLICT, "Not published", &message);
    }
    match console.api.send(&session, Method::PUT, org_path(&session, "rules"), Some(&candidate)).await {
        Ok(published) => {
            Redirect::to(&format!("/console/versions?published={}", published["version"].as_u64().unwrap_or(0)))
                .into_response()
        }
        Err(e) => layout::failed(&session, Nav::Tune, "Tune", &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(fields: &[(&str, &str)]) -> Form {
        Form(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn rules() -> Value {
        json!({
            "organisation": {"id": "acme"},
            "challenge": [
                {"id": "c", "goal": {"moments": 5, "distinct_teams": 3}, "window": "week", "match": {"kind": ["meetup"]}},
                {"id": "once", "goal": {"moments": 3}, "from": "2026-03-15T00:00:00Z", "until": "2026-04-15T00:00:00Z"}
            ],
            "rule": [
                {"id": "r", "award": [{"to": "actor", "currency": "xp", "amount": 20}], "cap": {"per": "day", "times": 3}},
                {"id": "q", "award": [{"to": "actor", "currency": "xp", "amount": 1}]}
            ]
        })
    }

    #[test]
    fn paths_name_places_as_the_api_names_them() {
        assert_eq!(
            steps("challenge[0].goal.moments"),
            Some(vec![Step::Key("challenge"), Step::Index(0), Step::Key("goal"), Step::Key("moments")])
        );
        assert_eq!(steps("rule[2].award[1].amount").map(|s| s.len()), Some(5));
        assert_eq!(steps("rule[x].cap"), None);
        assert_eq!(input_id("rule[2].award[1].amount"), "f-rule-2-award-1-amount");
    }

    #[test]
    fn a_candidate_is_the_rule_set_with_the_forms_values() {
        let c = candidate(
            &rules(),
            &form(&[
                ("csrf", "t"),
                ("challenge[0].goal.moments", "8"),
                ("challenge[0].goal.distinct_teams", ""),
                ("challenge[0].window", "month"),
                ("challenge[0].match.kind", "meetup, answer"),
                ("rule[0].award[0].amount", "40"),
                ("rule[0].cap.times", ""),
                ("rule[0].cap.per", "day"),
                ("rule[1].cap.times", "2"),
                ("rule[1].cap.per", "week"),
            ]),
        )
        .expect("a candidate");
        assert_eq!(c["challenge"][0]["goal"], json!({"moments": 8}));
        assert_eq!(c["challenge"][0]["window"], "month");
        assert_eq!(c["challenge"][0]["match"]["kind"], json!(["meetup", "answer"]));
        assert_eq!(c["rule"][0]["award"][0]["amount"], 40);
        assert!(c["rule"][0].get("cap").is_none(), "no times: no cap");
        assert_eq!(c["rule"][1]["cap"], json!({"times": 2, "per": "week"}), "a new cap takes its window");
        assert!(c["challenge"][1].get("window").is_none(), "a time-boxed challenge stays without a window");
    }

    #[test]
    fn values_that_cannot_be_are_named_at_their_field() {
        let errors = candidate(
            &rules(),
            &form(&[
                ("challenge[0].goal.moments", "-1"),
                ("challenge[0].window", "fortnight"),
                ("rule[9].award[0].amount", "3"),
            ]),
        )
        .expect_err("refused");
        let named: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(named, vec!["challenge[0].goal.moments", "challenge[0].window", "rule[9].award[0].amount"]);
    }

    #[test]
    fn an_api_refusal_lands_at_the_field_it_names() {
        let f = form(&[("challenge[0].goal.moments", "5")]);
        let failure = Failure {
            status: 400,
            code: "invalid_rules".into(),
            message: "candidate rule set:1: challenge[0].goal.moments: too many".into(),
            field: Some("challenge[0].goal.moments".into()),
        };
        let (errors, _) = place(&failure, &f);
        assert_eq!(
            errors,
            vec![("challenge[0].goal.moments".to_string(), "challenge[0].goal.moments: too many".to_string())]
        );
        let failure = Failure { field: Some("levels".into()), ..failure };
        let (errors, general) = place(&failure, &f);
        assert!(errors.is_empty() && general.is_some_and(|g| g.contains("levels")));
    }
}
