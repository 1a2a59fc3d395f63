//! RFC 6587 framing: arbitrary bytes, fed in arbitrary chunks, never panic, never yield a
//! frame over the limit, and every frame parses.
#![no_main]

#[allow(dead_code)]
#[path = "../../crates/mutt-ingest/src/syslog/framing.rs"]
mod framing;
#[allow(dead_code)]
#[path = "../../crates/mutt-ingest/src/syslog/parse.rs"]
mod parse;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else { return };
    let max = usize::from(head) * 4 + 1;
    let chunk = usize::from(head % 17) + 1;
    let mut codec = framing::SyslogCodec::new(max);
    let mut buf = BytesMut::new();
    let sender = std::net::IpAddr::from([192, 0, 2, 1]);
    for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= max);
                    let _ = parse::to_event(&frame, sender, chrono::Utc::now());
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    let _ = codec.decode_eof(&mut buf);
});
