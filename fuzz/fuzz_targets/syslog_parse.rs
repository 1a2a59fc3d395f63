//! The syslog parser: arbitrary bytes never panic and always give an event with the fields
//! the ingest step requires.
#![no_main]

#[allow(dead_code)]
#[path = "../../crates/mutt-ingest/src/syslog/parse.rs"]
mod parse;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The listeners skip blank input before parsing.
    if data.iter().all(|b| b.is_ascii_whitespace() || *b == 0) {
        return;
    }
    let parsed = parse::to_event(data, std::net::IpAddr::from([192, 0, 2, 1]), chrono::Utc::now());
    for field in ["hostname", "message", "timestamp"] {
        assert!(parsed.event.get(field).and_then(|v| v.as_str()).is_some_and(|s| !s.is_empty()), "{field}");
    }
});
