//! The same moment id with other content is an id conflict, not a duplicate: refused per record
//! (`409 id_conflict` alone, listed beside what was stored in a batch), naming the first field
//! that differs, across a restart and in `plaudit import`. A batch with refused records stores
//! the rest and says which were refused and why.

use serde_json::{Value, json};

use crate::app::App;
use plaudit_tests::scratch_dir;

fn moment(id: &str, kind: &str, channel: &str, at: &str) -> Value {
    json!({"id": id, "stakeholder": "ann", "counterpart": "bob", "kind": kind, "channel": channel, "at": at})
}

const AT: &str = "2026-03-02T10:00:00Z";

#[test]
fn a_batch_with_refused_records_stores_the_rest_and_lists_every_refusal() {
    let data = scratch_dir("plaudit-conflicts-batch");
    let server = App::start(&data);
    let key = server.key("acme").to_string();
    let batch = json!([
        moment("b1", "meetup", "event", AT),
        moment("b2", "meetup", "event", "yesterday"),
        moment("b3", "answer", "forum", AT),
        {"retract": "never-sent"}
    ]);
    let (status, body) = server.request("POST", "/v1/orgs/acme/moments", Some(&key), &batch.to_string());
    assert_eq!(status, 201, "stored: {body}");
    assert_eq!((body["accepted"].as_u64(), body["duplicates"].as_u64()), (Some(2), Some(0)), "{body}");
    let refused: Vec<(u64, &str, &str)> = body["refused"]
        .as_array()
        .expect("refused")
        .iter()
        .map(|r| {
            (r["index"].as_u64().unwrap_or(99), r["code"].as_str().unwrap_or(""), r["field"].as_str().unwrap_or(""))
        })
        .collect();
    assert_eq!(refused, vec![(1, "invalid_record", "[1].at"), (3, "invalid_record", "[3].retract")]);
    let effects = body["effects"].as_array().expect("the stored records' effects");
    assert!(effects.iter().any(|e| e["moment"] == "b1") && effects.iter().any(|e| e["moment"] == "b3"), "{body}");
    // Refused whole, a batch keeps its 4xx.
    let (status, body) =
        server.request("POST", "/v1/orgs/acme/moments", Some(&key), &json!([{"retract": "nope"}]).to_string());
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("[0].retract")), "{body}");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn the_same_id_with_other_content_is_a_conflict_naming_the_field_also_after_a_restart() {
    let data = scratch_dir("plaudit-conflicts-id");
    let server = App::start(&data);
    let key = server.key("acme").to_string();
    let post =
        |server: &App, body: Value| server.request("POST", "/v1/orgs/acme/moments", Some(&key), &body.to_string());
    assert_eq!(post(&server, moment("c1", "meetup", "event", AT)).0, 201);

    let check = |server: &App, round: u32| {
        // The same moment again, its time written another way: a duplicate.
        let (status, body) = post(server, moment("c1", "meetup", "event", "2026-03-02T11:00:00+01:00"));
        assert_eq!((status, body["duplicates"].as_u64()), (200, Some(1)), "{body}");
        // Another kind, channel or time under the same id: refused, naming the first field that differs.
        for (m, field) in [
            (moment("c1", "answer", "event", AT), "[0].kind"),
            (moment("c1", "meetup", "forum", AT), "[0].channel"),
            (moment("c1", "meetup", "event", "2026-03-03T10:00:00Z"), "[0].at"),
            (
                json!({"id": "c1", "stakeholder": "ann", "kind": "meetup", "channel": "event", "at": AT}),
                "[0].counterpart",
            ),
        ] {
            let (status, body) = post(server, m);
            assert_eq!(
                (status, body["error"]["code"].as_str(), body["error"]["field"].as_str()),
                (409, Some("id_conflict"), Some(field)),
                "{body}"
            );
            assert!(body["error"]["message"].as_str().unwrap_or("").contains("\"c1\""), "{body}");
        }
        // In a batch, the conflict is listed and the rest stored.
        let fresh = format!("c-new-{round}");
        let (status, body) =
            post(server, json!([moment("c1", "meetup", "email", AT), moment(&fresh, "meetup", "event", AT)]));
        assert_eq!((status, body["accepted"].as_u64()), (201, Some(1)), "{body}");
        assert_eq!(body["refused"][0]["code"], "id_conflict");
        assert_eq!(body["refused"][0]["field"], "[0].channel");
    };
    check(&server, 1);
    drop(server);
    let server = App::start(&data);
    check(&server, 2);
    drop(server);

    // `plaudit import` reports a conflict with its line.
    let file = data.join("more.jsonl");
    std::fs::write(&file, format!("{}\n{}\n", moment("c9", "meetup", "event", AT), moment("c1", "post", "event", AT)))
        .expect("a file");
    let out = std::process::Command::new(crate::plaudit_bin())
        .args(["import", "--org", "acme", "--data"])
        .arg(&data)
        .arg(&file)
        .output()
        .expect("plaudit import runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("more.jsonl:2: id conflict: kind:"), "{stderr}");
    assert!(stderr.contains("1 accepted"), "{stderr}");
    let _ = std::fs::remove_dir_all(&data);
}
