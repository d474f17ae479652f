//! Bad manifests, each in `tests/fixtures/manifests/<case>/` with the error it must produce
//! in `expected` (one line per problem: a manifest's problems are all reported), checked through
//! `wasm-lambda validate`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn every_bad_manifest_gives_the_expected_error() {
    let fixtures = Path::new(ROOT).join("tests/fixtures/manifests");
    let output = Command::new(env!("CARGO_BIN_EXE_wasm-lambda"))
        .arg("validate")
        .arg(&fixtures)
        .env("HOME", tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "validate must fail on bad manifests"
    );
    let stderr = String::from_utf8(output.stderr).unwrap();

    // One line per problem: `<name>: <file>: <field>: <reason>`.
    let mut reported: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, problem) in stderr.lines().filter_map(|line| line.split_once(": ")) {
        reported.entry(name).or_default().push(problem);
    }
    let mut cases = 0;
    for case in std::fs::read_dir(&fixtures).unwrap() {
        let case = case.unwrap().path();
        let name = case.file_name().unwrap().to_str().unwrap().to_string();
        let expected = std::fs::read_to_string(case.join("expected")).unwrap();
        let problems = reported
            .get(name.as_str())
            .unwrap_or_else(|| panic!("no error reported for {name}:\n{stderr}"));
        // Every problem of a manifest is reported, each on its own line, and no other.
        let expected: Vec<&str> = expected.lines().map(str::trim).collect();
        assert_eq!(
            problems.len(),
            expected.len(),
            "{name}: expected {} problems, got {problems:#?}",
            expected.len()
        );
        for expected in expected {
            assert!(
                problems.iter().any(|problem| problem.contains(expected)),
                "{name}:\n  expected a problem containing: {expected}\n  got: {problems:#?}"
            );
        }
        // Every error names the file it is about.
        for problem in problems {
            assert!(
                problem.contains(&format!("{name}/manifest.yaml"))
                    || problem.contains(&format!("{name}/{name}.wasm")),
                "{name}: the error does not name the file: {problem}"
            );
        }
        cases += 1;
    }
    assert!(cases >= 15, "only {cases} bad manifests");
}
