//! JSON text → one value (within `Limits`, duplicate keys refused) → a validated BotCluster:
//! never a panic; parse_json agrees with serde_json on what it accepts.
#![no_main]

use botcluster_api::json::parse_json;
use botcluster_api::yaml::{botcluster_from_value, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(v) = parse_json(text, Limits::default()) else {
        return;
    };
    // Whatever the bounded reader accepts, serde_json reads the same way.
    let plain: serde_json::Value = serde_json::from_str(text).expect("bounded JSON is JSON");
    assert_eq!(plain, v);
    if let Ok(bc) = botcluster_from_value(v) {
        let stored = serde_json::to_value(&bc).expect("serializes");
        let again: botcluster_api::BotCluster = serde_json::from_value(stored).expect("reads back");
        assert_eq!(again.spec, bc.spec);
    }
});
