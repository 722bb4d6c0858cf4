//! The BotCluster API as a user meets it: examples, invalid specs, the schema, and config.csv.

use std::path::{Path, PathBuf};

use botcluster_api::import::import_config_csv;
use botcluster_api::spec::*;
use botcluster_api::yaml::{botcluster_from_value, parse_values, Limits};
use botcluster_api::{parse_documents, BotCluster, ParseError};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(repo().join(path.as_ref())).expect("readable file")
}

#[test]
fn every_example_is_valid_and_names_the_schema() {
    let mut seen = 0;
    for entry in std::fs::read_dir(repo().join("examples")).expect("examples dir") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(
            text.starts_with("# yaml-language-server: $schema=../manifests/botcluster.schema.json"),
            "{} lacks the yaml-language-server schema line",
            path.display()
        );
        if let Err(e) = parse_documents(&text) {
            panic!("{} is invalid: {e}", path.display());
        }
        seen += 1;
    }
    assert!(seen >= 2);
}

#[test]
fn schema_file_is_fresh() {
    let have = read("manifests/botcluster.schema.json");
    assert!(
        have == botcluster_api::schema::botcluster_schema_json(),
        "manifests/botcluster.schema.json is stale; run `cargo xtask schema` and commit it"
    );
}

#[test]
fn full_example_sets_every_seed_parameter_and_round_trips_through_yaml() {
    let docs = parse_documents(&read("examples/full.yaml")).expect("valid");
    let bc = &docs[0];
    let s = &bc.spec;
    // The chapter's table and rules.
    assert!(s.autoscaling.enabled);
    assert_eq!(
        (s.autoscaling.min_instances, s.autoscaling.max_instances),
        (1, 10)
    );
    assert_eq!(s.autoscaling.cooldown.get().as_secs(), 300);
    assert_eq!(s.autoscaling.check_interval.get().as_secs(), 30);
    assert_eq!(s.autoscaling.rules.len(), 3);
    assert_eq!(
        s.resources.memory.as_ref().map(|m| m.bytes()),
        Some(Ok(8_000_000_000))
    );
    assert_eq!(s.resources.disk_priority, Some(5));
    let lb = s.load_balancer.as_ref().expect("lb");
    let policies: Vec<LbPolicy> = lb.routes.iter().map(|r| r.policy).collect();
    assert_eq!(
        policies,
        vec![
            LbPolicy::First,
            LbPolicy::Cookie,
            LbPolicy::RoundRobin,
            LbPolicy::First
        ]
    );
    assert_eq!(lb.rate_limit.as_ref().map(|r| r.endpoints.len()), Some(3));
    assert_eq!(
        s.vector_db.as_ref().map(|v| v.write_consistency_factor),
        Some(2)
    );
    let sh = s.sharding.as_ref().expect("sharding");
    assert!(sh.tenant.is_some() && sh.hash.is_some() && sh.range.is_some() && sh.geo.is_some());
    assert_eq!(s.cache.as_ref().map(|c| c.mode), Some(CacheMode::Sentinel));
    assert!(s.fallback.as_ref().and_then(|f| f.llm.as_ref()).is_some());

    let yaml = serde_saphyr::to_string(bc).expect("serialize");
    let again = parse_documents(&yaml).expect("re-parse");
    assert_eq!(&again[0], bc, "YAML round trip changed the object:\n{yaml}");
    let json = serde_json::to_string(bc).expect("json");
    let again: BotCluster = serde_json::from_str(&json).expect("json back");
    assert_eq!(&again, bc);
}

#[test]
fn defaults_are_the_seed_defaults() {
    let docs = parse_documents(&read("examples/minimal.yaml")).expect("valid");
    let a = &docs[0].spec.autoscaling;
    assert!(!a.enabled);
    assert_eq!((a.min_instances, a.max_instances), (1, 10));
    assert_eq!(
        (a.cpu_threshold, a.memory_threshold, a.request_threshold),
        (70.0, 80.0, 1000.0)
    );
    assert_eq!(a.cooldown.get().as_secs(), 300);
    assert_eq!(a.check_interval.get().as_secs(), 30);
    let h = &docs[0].spec.health;
    assert_eq!(
        (
            h.endpoint.as_str(),
            h.interval.get().as_secs(),
            h.timeout.get().as_secs(),
            h.retries
        ),
        ("/api/health", 10, 5, 3)
    );
    let cb = &docs[0].spec.circuit_breaker;
    assert_eq!(
        (
            cb.threshold,
            cb.timeout.get().as_secs(),
            cb.half_open_requests
        ),
        (5, 30, 3)
    );
}

/// Each file in tests/invalid/ starts with `# expect: <field path>`; the error must name it.
#[test]
fn every_invalid_spec_gets_an_error_at_its_field_path() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("dir") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} lacks `# expect:`", path.display()))
            .trim()
            .to_string();
        let values = parse_values(&text, Limits::default()).expect("well-formed YAML");
        let errors = match botcluster_from_value(values[0].clone()) {
            Ok(_) => panic!("{} was accepted", path.display()),
            Err(e) => e,
        };
        assert!(
            errors.0.iter().any(|e| e.field == expect),
            "{}: expected an error at {expect}, got:\n{errors}",
            path.display()
        );
        for e in &errors.0 {
            assert!(
                e.message.len() > 8,
                "{}: message too terse: {e}",
                path.display()
            );
        }
        count += 1;
    }
    assert!(count >= 30, "only {count} invalid specs");
}

#[test]
fn all_problems_are_reported_at_once() {
    let text = "apiVersion: botcluster.io/v1alpha1\nkind: BotCluster\nmetadata: {name: x}\nspec:\n  image: img\n  replcas: 2\n  autoscaling: {minInstances: 12, maxInstances: 10, maxInstnces: 3}\n  health: {retries: 0}\n";
    let v = parse_values(text, Limits::default()).unwrap().remove(0);
    let errs = botcluster_from_value(v).unwrap_err();
    let fields: Vec<&str> = errs.0.iter().map(|e| e.field.as_str()).collect();
    assert!(fields.contains(&"spec.replcas"), "{errs}");
    assert!(fields.contains(&"spec.autoscaling.maxInstnces"), "{errs}");
    assert!(fields.contains(&"spec.autoscaling.minInstances"), "{errs}");
    assert!(fields.contains(&"spec.health.retries"), "{errs}");
    let typo = errs.0.iter().find(|e| e.field == "spec.replcas").unwrap();
    assert!(typo.message.contains("did you mean `replicas`"), "{typo}");
    let minmax = errs
        .0
        .iter()
        .find(|e| e.field == "spec.autoscaling.minInstances")
        .unwrap();
    assert_eq!(
        minmax.to_string(),
        "spec.autoscaling.minInstances: 12 is greater than maxInstances (10); lower minInstances or raise maxInstances"
    );
}

#[test]
fn qdrant_majority_error_explains_the_integer() {
    let text = read("crates/api/tests/invalid/qdrant-majority.yaml");
    let v = parse_values(&text, Limits::default()).unwrap().remove(0);
    let errs = botcluster_from_value(v).unwrap_err().to_string();
    assert!(errs.contains("no \"majority\""), "{errs}");
}

#[test]
fn unknown_kind_is_refused_by_name() {
    let err = parse_documents(
        "apiVersion: botcluster.io/v1alpha1\nkind: BotFleet\nmetadata: {name: x}\nspec: {}\n",
    )
    .unwrap_err();
    assert!(matches!(err, ParseError::NotAnObject { .. }));
    assert!(err.to_string().contains("BotFleet"));
}

#[test]
fn seed_config_csv_imports_to_a_valid_spec() {
    let imp = import_config_csv(
        &read("examples/config.csv"),
        "botserver",
        "botcluster-botserver",
    )
    .expect("imports");
    let s = &imp.cluster.spec;
    assert!(imp.unknown_keys.is_empty(), "{:?}", imp.unknown_keys);
    assert!(s.autoscaling.enabled);
    assert_eq!(s.autoscaling.max_instances, 10);
    assert_eq!(s.autoscaling.rules.len(), 3);
    let rt = s
        .autoscaling
        .rules
        .iter()
        .find(|r| r.metric == ScalingMetric::ResponseTimeMs)
        .unwrap();
    assert_eq!((rt.above, rt.action), (Some(2000.0), ScaleAction::Up));
    let cpu = s
        .autoscaling
        .rules
        .iter()
        .find(|r| r.metric == ScalingMetric::Cpu)
        .unwrap();
    assert_eq!((cpu.below, cpu.action), (Some(30.0), ScaleAction::Down));
    // The chapter sets shard-strategy four times and cache-mode twice: last wins, with warnings.
    assert_eq!(
        s.sharding.as_ref().map(|s| s.strategy),
        Some(ShardStrategy::Geo)
    );
    assert_eq!(s.cache.as_ref().map(|c| c.mode), Some(CacheMode::Sentinel));
    assert!(imp.warnings.iter().any(|w| w.contains("shard-strategy")));
    assert!(imp.warnings.iter().any(|w| w.contains("majority")));
    assert_eq!(
        s.vector_db.as_ref().map(|v| v.write_consistency_factor),
        Some(2)
    );
    let rl = s
        .load_balancer
        .as_ref()
        .and_then(|lb| lb.rate_limit.as_ref())
        .unwrap();
    assert_eq!(
        rl.endpoints.iter().map(|e| e.requests).collect::<Vec<_>>(),
        vec![10, 30, 50]
    );
    assert_eq!(s.health.interval.get().as_secs(), 10);
    let yaml = serde_saphyr::to_string(&imp.cluster).unwrap();
    parse_documents(&yaml).expect("the imported YAML is a valid BotCluster");
}

#[test]
fn import_reports_unknown_keys_and_bad_values() {
    let imp = import_config_csv("scale-enabled,true\nllm-temperature,0.7\n", "b", "img").unwrap();
    assert_eq!(imp.unknown_keys, vec![(2, "llm-temperature".to_string())]);
    assert!(
        imp.cluster.metadata.annotations[botcluster_api::import::UNMAPPED_ANNOTATION]
            .contains("llm-temperature,0.7")
    );
    let err = import_config_csv(
        "scale-min-instances,lots\nhealth-interval,soon\n",
        "b",
        "img",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("line 1: scale-min-instances"), "{err}");
    assert!(err.contains("line 2: health-interval"), "{err}");
    let err = import_config_csv(
        "scale-min-instances,12\nscale-max-instances,10\n",
        "b",
        "img",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("spec.autoscaling.minInstances"), "{err}");
}

#[test]
fn suspend_defaults_to_false_and_specs_stored_without_it_still_read() {
    let bc = parse_documents(&read("examples/minimal.yaml"))
        .expect("valid")
        .remove(0);
    assert!(!bc.spec.suspend);

    // The server stores the spec with defaults applied, as JSON; like every defaulted boolean,
    // `suspend: false` is written out, so writing it explicitly is not a change.
    let stored = serde_json::to_value(&bc.spec).expect("json");
    assert_eq!(stored["suspend"], serde_json::Value::Bool(false));
    let mut explicit = read("examples/minimal.yaml");
    explicit = explicit.replace("  replicas: 2\n", "  replicas: 2\n  suspend: false\n");
    let explicit = parse_documents(&explicit).expect("valid").remove(0);
    assert_eq!(serde_json::to_value(&explicit.spec).expect("json"), stored);

    // A spec stored before the field existed reads back unsuspended.
    let mut old = stored.clone();
    old.as_object_mut().expect("object").remove("suspend");
    let read_back: BotClusterSpec = serde_json::from_value(old).expect("old spec reads");
    assert_eq!(read_back, bc.spec);
}

#[test]
fn suspended_spec_round_trips_through_yaml_and_the_stored_json() {
    let text = read("examples/minimal.yaml")
        .replace("  replicas: 2\n", "  replicas: 2\n  suspend: true\n");
    let bc = parse_documents(&text).expect("valid").remove(0);
    assert!(bc.spec.suspend);

    let stored = serde_json::to_value(&bc.spec).expect("json");
    assert_eq!(stored["suspend"], serde_json::Value::Bool(true));
    let read_back: BotClusterSpec = serde_json::from_value(stored).expect("stored spec reads");
    assert_eq!(read_back, bc.spec);

    let yaml = serde_saphyr::to_string(&bc).expect("serialize");
    assert!(yaml.contains("suspend: true"), "{yaml}");
    let again = parse_documents(&yaml).expect("re-parse").remove(0);
    assert_eq!(again, bc);
}
