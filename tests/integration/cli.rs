//! The real `plaudit` binary: generate, score, summarise, check; bad lines named by number.

use std::io::Write;
use std::process::{Command, Stdio};

/// The binary, run from the repository's root (the paths below are relative to it).
fn plaudit() -> Command {
    let mut command = Command::new(crate::plaudit_bin());
    command.current_dir(plaudit_tests::repo_root());
    command
}

fn root() -> std::path::PathBuf {
    plaudit_tests::repo_root()
}

fn score_stdin(args: &[&str], input: &str) -> std::process::Output {
    let mut child = plaudit()
        .current_dir(root())
        .args(["score", "--rules", "rules/acme.toml"])
        .args(args)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("plaudit runs");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write");
    child.wait_with_output().expect("plaudit ends")
}

#[test]
fn generated_workload_scores_into_effects_and_a_summary() {
    let generated = plaudit().args(["gen", "--stakeholders", "50", "--moments", "500"]).output().expect("gen runs");
    assert!(generated.status.success());
    let input = String::from_utf8(generated.stdout).expect("utf-8");
    assert_eq!(input.lines().count(), 550);
    let out = score_stdin(&[], &input);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let effects: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert!(effects.len() > 500);
    assert!(effects.iter().all(|e| e["moment"].is_string() && e["stakeholder"].is_string() && e["source"].is_string()));
    let out = score_stdin(&["--summary", "--top", "3"], &input);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(summary["organisation"], "acme");
    assert_eq!(summary["leaderboards"].as_array().map(Vec::len), Some(3));
    assert!(summary["leaderboards"][0]["rows"].as_array().is_some_and(|r| r.len() == 3));
}

#[test]
fn bad_line_stops_with_its_number_or_is_skipped_on_request() {
    let input = concat!(
        r#"{"id":"1","stakeholder":"ann","kind":"answer","channel":"forum","at":"2026-03-02T10:00:00Z"}"#,
        "\n{not json}\n",
        r#"{"id":"2","stakeholder":"ann","kind":"answer","channel":"forum","at":"not a time"}"#,
        "\n",
        r#"{"id":"3","stakeholder":"ann","kind":"answer","channel":"forum","at":"2026-03-02T11:00:00Z"}"#,
        "\n"
    );
    let out = score_stdin(&[], input);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("-:2:"), "{err}");
    let out = score_stdin(&["--on-error", "skip"], input);
    assert_eq!(out.status.code(), Some(2), "finished, with bad lines");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("-:2:") && err.contains("-:3: at:"), "{err}");
    assert!(err.contains("2 accepted"), "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(r#""moment":"3""#));
}

#[test]
fn check_reports_every_problem_with_its_path() {
    let dir = std::env::temp_dir().join(format!("plaudit-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[organisation]\nid = \"x\"\n[[currency]]\nid = \"xp\"\n[[rule]]\nid = \"r\"\naward = [{ to = \"actor\", currency = \"gold\", amount = 1 }]\n").expect("write");
    let out = plaudit().arg("check").arg(&bad).output().expect("check runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml: rule[0].award[0].currency: unknown currency \"gold\""), "{err}");
    let ok = plaudit().current_dir(root()).args(["check", "rules/acme.toml"]).output().expect("check runs");
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("20 rules"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn plugin_check_lists_imports_and_exports_or_names_the_problem() {
    let dir = std::env::temp_dir().join(format!("plaudit-plugin-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = root().join("plugins/dist/bridge_builder.wasm");
    let out = plaudit().args(["plugin", "check"]).arg(&path).output().expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for line in ["plugin:   bridge-builder", "context:  [teams, state]", "imports:  [plaudit.log]", "manifest"] {
        assert!(stdout.contains(line), "{line:?} in:\n{stdout}");
    }
    let wat = plaudit()
        .current_dir(root())
        .args(["plugin", "check", "tests/fixtures/plugins/trap.wat"])
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&wat.stdout).contains("plugin:   trap 1 (ABI 1)"), "WebAssembly text is read too");

    let sneaky = wat::parse_str(
        r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
            (memory (export "memory") 1)
            (func (export "alloc") (param i32) (result i32) i32.const 0)
            (func (export "score") (param i32 i32) (result i64) i64.const 0)
            (func (export "manifest") (result i64) i64.const 0))"#,
    )
    .expect("valid WAT");
    let path = dir.join("sneaky.wasm");
    std::fs::write(&path, sneaky).expect("write");
    let out = plaudit().args(["plugin", "check"]).arg(&path).output().expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused") && err.contains("fd_write"), "{err}");

    let path = dir.join("garbage.wasm");
    std::fs::write(&path, b"not wasm").expect("write");
    let out = plaudit().args(["plugin", "check"]).arg(&path).output().expect("runs");
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1, "one line, no byte dumps");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn simulate_prints_a_table_or_the_json_diff() {
    let dir = std::env::temp_dir().join(format!("plaudit-simulate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let acme = std::fs::read_to_string(root().join("rules/acme.toml")).expect("acme");
    let candidate = dir.join("candidate.toml");
    std::fs::write(
        &candidate,
        acme.replace("goal = { moments = 5, distinct_teams = 3 }", "goal = { moments = 3, distinct_teams = 1 }"),
    )
    .expect("write");
    let moments = dir.join("moments.jsonl");
    let generated = plaudit().args(["gen", "--stakeholders", "60", "--moments", "3000"]).output().expect("gen");
    std::fs::write(&moments, generated.stdout).expect("write");
    let run = |json: bool| {
        let mut c = plaudit();
        c.current_dir(root())
            .args(["simulate", "--rules", "rules/acme.toml", "--candidate"])
            .arg(&candidate)
            .arg(&moments);
        if json {
            c.arg("--json");
        }
        c.output().expect("simulate runs")
    };
    let table = run(false);
    assert!(table.status.success(), "{}", String::from_utf8_lossy(&table.stderr));
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("3060 records, 60 stakeholders"), "{text}");
    assert!(text.contains("bridge-week"), "{text}");
    let json: serde_json::Value = serde_json::from_slice(&run(true).stdout).expect("JSON diff");
    let bridge = &json["completions"]["bridge-week"];
    assert!(bridge[1].as_u64() > bridge[0].as_u64(), "an easier goal completes more often: {bridge}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn score_with_a_plugin_adds_its_effects_and_reports_its_status() {
    let dir = std::env::temp_dir().join(format!("plaudit-score-plugin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let moments = dir.join("moments.jsonl");
    let lines = [
        r#"{"profile": {"id": "ann", "kind": "employee", "team": "sales"}}"#,
        r#"{"profile": {"id": "bob", "kind": "employee", "team": "engineering"}}"#,
        r#"{"id": "m1", "stakeholder": "ann", "counterpart": "bob", "kind": "meetup", "channel": "event", "at": "2026-03-02T10:00:00Z"}"#,
    ];
    std::fs::write(&moments, lines.join("\n")).expect("write");
    let out = plaudit()
        .current_dir(root())
        .args(["score", "--rules", "rules/acme.toml", "--plugin", "plugins/dist/bridge_builder.wasm"])
        .arg(&moments)
        .output()
        .expect("score runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains(r#""source":"bridge_builder","type":"points_awarded","currency":"xp","amount":25"#),
        "{stdout}"
    );
    assert!(stderr.contains("plugin bridge_builder 1.0.0: Active, 1 calls (0 failed), 1 moments"), "{stderr}");

    let out = plaudit()
        .current_dir(root())
        .args(["score", "--rules", "rules/acme.toml", "--plugin", "tests/fixtures/plugins/malformed.wasm"])
        .arg(&moments)
        .output()
        .expect("score runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("malformed.wasm: refused: not a valid WebAssembly module"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn plugin_new_creates_a_crate_from_the_template() {
    let dir = std::env::temp_dir().join(format!("plaudit-plugin-new-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out = plaudit().args(["plugin", "new", "welcome-back", "--dir"]).arg(&dir).output().expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let manifest = std::fs::read_to_string(dir.join("welcome-back/Cargo.toml")).expect("Cargo.toml");
    assert!(
        manifest.contains(r#"name = "welcome-back""#) && manifest.contains("rust-version = \"1.63\""),
        "{manifest}"
    );
    let lib = std::fs::read_to_string(dir.join("welcome-back/src/lib.rs")).expect("lib.rs");
    assert!(lib.contains(r#"name: "welcome-back""#) && lib.contains("plaudit_sdk::plugin!(PLUGIN)"), "{lib}");
    let again = plaudit().args(["plugin", "new", "welcome-back", "--dir"]).arg(&dir).output().expect("runs");
    assert!(!again.status.success(), "an existing crate is not overwritten");
    let bad = plaudit().args(["plugin", "new", "../escape", "--dir"]).arg(&dir).output().expect("runs");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("lowercase letters"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn simulate_runs_a_candidate_over_an_organisations_durable_log() {
    let dir = std::env::temp_dir().join(format!("plaudit-simulate-log-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let moments = dir.join("moments.jsonl");
    let generated = plaudit().args(["gen", "--stakeholders", "50", "--moments", "500"]).output().expect("gen");
    std::fs::write(&moments, generated.stdout).expect("write");
    let data = dir.join("data");
    let import = plaudit()
        .current_dir(root())
        .args(["import", "--data"])
        .arg(&data)
        .args(["--org", "acme", "--rules", "rules/acme.toml"])
        .arg(&moments)
        .output()
        .expect("import runs");
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));
    let acme = std::fs::read_to_string(root().join("rules/acme.toml")).expect("acme");
    let candidate = dir.join("candidate.toml");
    std::fs::write(&candidate, acme.replace("amount = 20 }]", "amount = 40 }]")).expect("write");
    let out = plaudit()
        .args(["simulate", "--data"])
        .arg(&data)
        .args(["--org", "acme", "--json", "--rules"])
        .arg(&candidate)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let diff: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON diff");
    assert_eq!(diff["records"], 550, "the whole log");
    assert!(diff["changed"].as_u64().is_some_and(|n| n > 0), "{diff}");
    let xp = &diff["totals"]["xp"];
    assert!(xp[1].as_i64() > xp[0].as_i64(), "doubling an award raises xp: {xp}");
    let unknown = plaudit()
        .args(["simulate", "--data"])
        .arg(&data)
        .args(["--org", "nobody", "--rules"])
        .arg(&candidate)
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("has no log"));

    // Applying it to history: the preview changes nothing, --confirm publishes and applies, and
    // the replayed state is what the preview said.
    let apply = |confirm: bool| {
        let mut cmd = plaudit();
        cmd.args(["apply", "--data"]).arg(&data).args(["--org", "acme", "--mode", "rebase", "--json", "--rules"]);
        cmd.arg(&candidate);
        if confirm {
            cmd.arg("--confirm");
        }
        let out = cmd.output().expect("runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out
    };
    let xp_total = || {
        let out = plaudit().args(["replay", "--summary", "--data"]).arg(&data).args(["--org", "acme"]).output();
        let out = out.expect("replay runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON summary");
        let profiles = summary["profiles"].as_array().cloned().unwrap_or_default();
        profiles.iter().filter_map(|p| p["currencies"]["xp"].as_i64()).sum::<i64>()
    };
    let preview: serde_json::Value = serde_json::from_slice(&apply(false).stdout).expect("a JSON preview");
    assert_eq!(preview["totals"]["xp"], diff["totals"]["xp"], "the same diff as simulate");
    assert_eq!(xp_total(), xp[0].as_i64().expect("xp"), "a preview changes nothing");
    let applied = apply(true);
    assert!(String::from_utf8_lossy(&applied.stderr).contains("applied to the history up to record 550 (rebase)"));
    assert_eq!(xp_total(), xp[1].as_i64().expect("xp"), "the state the preview showed");
    let _ = std::fs::remove_dir_all(&dir);
}
