//! The GitSource kind: defaults, field paths of its errors, Flux's revision format.

use botcluster_api::gitsource::{gitsource_from_value, RefKind};
use botcluster_api::yaml::{parse_values, Limits};

fn doc(yaml: &str) -> serde_json::Value {
    parse_values(yaml, Limits::default()).unwrap().remove(0)
}

#[test]
fn a_minimal_source_gets_flux_like_defaults() {
    let g = gitsource_from_value(doc(
        "apiVersion: botcluster.io/v1alpha1\nkind: GitSource\nmetadata: {name: fleet}\nspec: {url: 'file:///srv/bots.git'}\n",
    ))
    .unwrap();
    let s = &g.spec;
    assert_eq!(s.reference.kind(), RefKind::Branch("main"));
    assert_eq!(
        (s.path.as_str(), s.interval.as_str(), s.timeout.as_str()),
        (".", "60s", "60s")
    );
    assert!(s.prune && !s.suspend && !s.allow_empty && !s.wait);
    let sha = "a".repeat(40);
    assert_eq!(s.reference.revision(&sha), format!("main@sha1:{sha}"));
}

#[test]
fn every_problem_is_reported_with_its_field_path() {
    let err = gitsource_from_value(doc(
        "apiVersion: botcluster.io/v1alpha1\nkind: GitSource\nmetadata: {name: Fleet}\nspec:\n  url: ''\n  ref: {branch: main, tag: v1}\n  intervall: 1m\n  timeout: 0s\n  credentials: 'a/b'\n",
    ))
    .unwrap_err();
    let fields: Vec<&str> = err.0.iter().map(|e| e.field.as_str()).collect();
    for want in [
        "spec.intervall",
        "metadata.name",
        "spec.url",
        "spec.ref",
        "spec.timeout",
        "spec.credentials",
    ] {
        assert!(fields.contains(&want), "{want} missing from {fields:?}");
    }
    let typo = err.0.iter().find(|e| e.field == "spec.intervall").unwrap();
    assert!(typo.message.contains("interval"), "{}", typo.message);
}

#[test]
fn a_commit_ref_has_a_bare_revision() {
    let sha = "b".repeat(40);
    let g = gitsource_from_value(doc(&format!(
        "apiVersion: botcluster.io/v1alpha1\nkind: GitSource\nmetadata: {{name: pinned}}\nspec: {{url: /srv/x.git, ref: {{commit: '{sha}'}}}}\n"
    )))
    .unwrap();
    assert_eq!(g.spec.reference.revision(&sha), format!("sha1:{sha}"));
}

#[test]
fn the_gitsource_schema_file_and_example_are_fresh_and_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let have =
        std::fs::read_to_string(root.join("manifests/gitsource.schema.json")).unwrap_or_default();
    assert!(
        have == botcluster_api::gitsource::gitsource_schema_json(),
        "manifests/gitsource.schema.json is stale; run `cargo xtask schema` and commit it"
    );
    let text = std::fs::read_to_string(root.join("examples/gitops/fleet.yaml")).unwrap();
    assert!(
        text.starts_with("# yaml-language-server: $schema=../../manifests/gitsource.schema.json")
    );
    let g = gitsource_from_value(doc(&text)).unwrap();
    assert_eq!(g.spec.path, "clusters");
}
