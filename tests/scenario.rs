//! The scenario of docs/records.md (examples/scenario/run.sh) runs as
//! written: every step checks its own answer, so if this passes, the
//! scenario that page tells is true.

use crate::support;

#[test]
fn the_readme_scenario_runs_end_to_end() {
    for tool in ["bash", "curl", "jq", "python3"] {
        if !support::require_tool(tool) {
            return;
        }
    }
    let out = std::process::Command::new("bash")
        .arg(support::root().join("examples/scenario/run.sh"))
        .env("STAGEGATE_BIN", support::bin())
        .current_dir(support::root())
        .output()
        .expect("running examples/scenario/run.sh (needs bash, curl, jq, python3)");
    let (stdout, stderr) = support::text(&out);
    assert!(out.status.success(), "scenario failed:\n{stdout}\n{stderr}");
    for line in [
        "held: progression.criterion_failed",
        "promoted to general at 100%",
        "monitoring.stale",
        "4. rolled_back by ops: rolled_back at pilot",
        "decision log verified",
        "scenario complete",
    ] {
        assert!(stdout.contains(line), "missing '{line}' in:\n{stdout}");
    }
}
