//! The SNMP trap decoding path: arbitrary datagrams through async-snmp's message decoder and
//! the listener's varbind formatting (crates/mutt-ingest/src/snmp/event.rs) never panic.
#![no_main]

#[path = "../../crates/mutt-ingest/src/snmp/event.rs"]
#[allow(dead_code)]
mod event;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(varbinds) = event::decode_varbinds(data) {
        for (oid, _) in varbinds {
            assert!(oid.starts_with('.'), "{oid}");
        }
    }
});
