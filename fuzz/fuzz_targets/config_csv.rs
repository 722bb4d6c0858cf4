//! `config.csv` text → an imported BotCluster: never a panic, and an import is always valid.
#![no_main]

use botcluster_api::import::import_config_csv;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(import) = import_config_csv(text, "fuzzed", "botcluster-botserver") {
        botcluster_api::validate::validate(&import.cluster).expect("an import is valid");
    }
});
