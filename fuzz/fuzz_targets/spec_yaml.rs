//! YAML text → documents (within `Limits`) → validated BotClusters: never a panic, and what
//! validates has the properties `validate` promises.
#![no_main]

use botcluster_api::yaml::{botcluster_from_value, parse_values, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(values) = parse_values(text, Limits::default()) else {
        return;
    };
    for v in values {
        if let Ok(bc) = botcluster_from_value(v) {
            botcluster_fuzz_checks(&bc);
        }
    }
});

/// What a validated spec guarantees (see `validate`): quantities parse, numbers are bounded.
fn botcluster_fuzz_checks(bc: &botcluster_api::BotCluster) {
    let s = &bc.spec;
    if let Some(cpu) = &s.resources.cpu {
        let n = cpu.count().expect("validated CPU limit parses");
        assert!((1..=botcluster_api::quantity::MAX_CPUS).contains(&n));
    }
    assert!(
        s.autoscaling.cooldown.parse().expect("validated")
            <= botcluster_api::quantity::MAX_DURATION
    );
    assert!(
        s.health.interval.parse().expect("validated") <= botcluster_api::quantity::MAX_DURATION
    );
    // A valid object round-trips through its stored JSON form.
    let stored = serde_json::to_value(bc).expect("serializes");
    let again: botcluster_api::BotCluster = serde_json::from_value(stored).expect("reads back");
    assert_eq!(&again.spec, &bc.spec);
}
