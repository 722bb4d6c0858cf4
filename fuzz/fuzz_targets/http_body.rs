//! The server's PUT body decoder (what runs on the blocking thread), as JSON and as YAML:
//! every input is an answer (an object, field errors, or a refusal), never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let json = first & 1 == 1;
    if let Ok(Err(errors)) = botcluster_server::decode_body(json, body, "fuzzed") {
        assert!(!errors.0.is_empty());
    }
});
