//! The batch envelope (`redis.batch_envelope`, `embedded.batch_envelope`): many events in one
//! queue element (a Redis list element, a row of the embedded queue).
//!
//! Why: with one element per event, Redis spends most of its CPU per element (protocol
//! parsing, Lua string conversion, list node inserts), not per byte; a push of 100 events as
//! one element costs it about what one event did. SQLite likewise: one row and one index entry
//! to insert, lease and delete instead of a hundred. The format stays readable with `redis-cli`
//! and `jq` (each line is a JSON value): a header line, then one compact JSON event per line.
//!
//! ```text
//! {"_mutt_batch":3}
//! {"hostname":"sw1",...}
//! {"hostname":"sw2",...}
//! {"hostname":"sw3",...}
//! ```
//!
//! Written by hand: it is this queue's own framing. Events containing a newline byte (never
//! serde_json's compact output, but possible from other producers) or looking like a header
//! are never packed: they travel alone, as every event did before. Readers accept both forms,
//! so queues written by an earlier muttd or the original MUTT are read as they are.

/// What every envelope starts with, followed by the event count and `}\n`.
pub const HEADER: &[u8] = b"{\"_mutt_batch\":";

/// The Lua twin of [`count`], prepended to the scripts that count events.
pub const LUA_COUNT_FN: &str = r#"
local function mutt_count(v)
  if string.sub(v, 1, 15) ~= '{"_mutt_batch":' then return 1 end
  return tonumber(string.match(v, '^{"_mutt_batch":(%d+)}\n')) or 1
end
"#;

/// Whether `message` can travel inside an envelope.
fn packable(message: &[u8]) -> bool {
    !message.contains(&b'\n') && !message.starts_with(HEADER)
}

/// Groups `messages` into list elements of at most `max` events each, keeping their order
/// (the first message ends up in the first element). `max` ≤ 1 packs nothing.
pub fn pack(messages: &[Vec<u8>], max: usize) -> Vec<Vec<u8>> {
    if max <= 1 {
        return messages.to_vec();
    }
    let mut out = Vec::new();
    let mut run: Vec<&[u8]> = Vec::new();
    for m in messages {
        if !packable(m) {
            flush(&mut run, &mut out);
            out.push(m.clone());
            continue;
        }
        run.push(m);
        if run.len() == max {
            flush(&mut run, &mut out);
        }
    }
    flush(&mut run, &mut out);
    out
}

fn flush(run: &mut Vec<&[u8]>, out: &mut Vec<Vec<u8>>) {
    match run.len() {
        0 => {}
        1 => out.push(run[0].to_vec()),
        n => {
            let size = HEADER.len() + 8 + run.iter().map(|m| m.len() + 1).sum::<usize>();
            let mut e = Vec::with_capacity(size);
            e.extend_from_slice(HEADER);
            e.extend_from_slice(n.to_string().as_bytes());
            e.extend_from_slice(b"}");
            for m in run.iter() {
                e.push(b'\n');
                e.extend_from_slice(m);
            }
            out.push(e);
        }
    }
    run.clear();
}

/// The events an element carries: 1 for a plain message.
pub fn count(element: &[u8]) -> usize {
    header(element).map(|(n, _)| n).unwrap_or(1)
}

/// An envelope's count and where its first event starts.
fn header(element: &[u8]) -> Option<(usize, usize)> {
    let rest = element.strip_prefix(HEADER)?;
    let end = rest.iter().position(|b| *b == b'}')?;
    let n: usize = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    (rest.get(end + 1) == Some(&b'\n')).then_some((n, HEADER.len() + end + 2))
}

/// Appends the events of `element` to `out`: the element itself when it is a plain message
/// (or an envelope whose header cannot be read: the worker then sees it as one unreadable
/// message and dead-letters it with its reason, rather than losing it).
pub fn unpack_into(element: Vec<u8>, out: &mut Vec<Vec<u8>>) {
    let Some((n, start)) = header(&element) else {
        out.push(element);
        return;
    };
    // memchr finds the newlines a word or a vector at a time; a closure split (byte by byte)
    // was a quarter of the forwarder's CPU with envelopes of 40 alerts.
    let body = &element[start..];
    // The count is the header's word: bounded by what the body can hold.
    out.reserve(n.min(body.len() / 2 + 1));
    let mut from = 0;
    for end in memchr::memchr_iter(b'\n', body) {
        out.push(body[from..end].to_vec());
        from = end + 1;
    }
    out.push(body[from..].to_vec());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("{{\"seq\":{i}}}").into_bytes()).collect()
    }

    fn unpack_all(elements: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for e in elements {
            unpack_into(e, &mut out);
        }
        out
    }

    #[test]
    fn packs_in_order_and_unpacks_to_the_same_bytes() {
        let m = msgs(250);
        let packed = pack(&m, 100);
        assert_eq!(packed.len(), 3);
        assert_eq!(packed.iter().map(|e| count(e)).collect::<Vec<_>>(), vec![100, 100, 50]);
        assert!(packed[0].starts_with(b"{\"_mutt_batch\":100}\n{\"seq\":0}\n"));
        assert_eq!(unpack_all(packed), m);
    }

    #[test]
    fn a_single_message_and_max_one_stay_plain() {
        let m = msgs(3);
        assert_eq!(pack(&m[..1], 100), m[..1].to_vec());
        assert_eq!(pack(&m, 1), m);
        assert_eq!(count(&m[0]), 1);
    }

    #[test]
    fn messages_with_newlines_or_a_header_travel_alone() {
        let mut m = msgs(4);
        m[1] = b"{\"message\":\"two\nlines\"}".to_vec();
        m[2] = b"{\"_mutt_batch\":2}\nfake".to_vec();
        let packed = pack(&m, 100);
        assert_eq!(packed.len(), 4, "the odd ones split the run: {packed:?}");
        assert_eq!(packed[1], m[1]);
        assert_eq!(packed[2], m[2], "a header-like message is not wrapped again");
        // The header-like one unpacks as an envelope: that is why producers never pack it, and
        // a reader of the original's queues sees no such message (it has no `_mutt_batch`).
        assert_eq!(
            unpack_all(vec![packed[0].clone(), packed[1].clone(), packed[3].clone()]),
            vec![m[0].clone(), m[1].clone(), m[3].clone()]
        );
    }

    #[test]
    fn an_unreadable_header_is_one_message() {
        for bad in [&b"{\"_mutt_batch\":x}\n{}"[..], b"{\"_mutt_batch\":2}", b"{\"_mutt_batch\":"] {
            assert_eq!(count(bad), 1);
            let mut out = Vec::new();
            unpack_into(bad.to_vec(), &mut out);
            assert_eq!(out, vec![bad.to_vec()]);
        }
    }

    /// Every line after the header is one message, empty ones included (the worker
    /// dead-letters them as unreadable rather than dropping them), whatever count the header
    /// claims: a count far beyond the body reserves no more than the body can hold.
    #[test]
    fn every_line_is_a_message_whatever_the_header_claims() {
        let element = b"{\"_mutt_batch\":18446744073709551615}\n{}\n\n{\"a\":1}\n".to_vec();
        let mut out = Vec::new();
        unpack_into(element, &mut out);
        assert_eq!(out, vec![b"{}".to_vec(), Vec::new(), b"{\"a\":1}".to_vec(), Vec::new()]);
    }
}
