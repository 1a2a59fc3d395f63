use super::*;
use proptest::prelude::*;

const REQUIRED: [&str; 3] = ["hostname", "message", "timestamp"];
const ID: &str = "01900000-0000-7000-8000-000000000001";

/// What reading the message into a map gives: the answer [`QueuedEvent::read`] must give.
fn by_map(raw: &[u8], required: &[&str]) -> Result<QueuedEvent<'static>, EventError> {
    Event::from_slice(raw).map(|e| QueuedEvent::of_event(&e, required))
}

#[test]
fn a_usual_event_is_read_borrowed() {
    let raw = format!(
        r#"{{"hostname":"sw1","message":"LINK DOWN","timestamp":"2025-11-08T12:00:00Z","syslog_severity":3,"extra":{{"a":[1,2.5,null]}},"_correlation_id":"c1","_event_id":"{ID}"}}"#
    );
    let e = QueuedEvent::read_borrowed(raw.as_bytes(), &REQUIRED).expect("the fast path reads it");
    assert!(matches!(e.hostname, Some(Cow::Borrowed("sw1"))));
    assert!(matches!(e.message, Some(Cow::Borrowed("LINK DOWN"))));
    assert_eq!(e.event_id().to_string(), ID);
    assert_eq!((e.correlation_id(), e.retry_count()), ("c1", 0));
    assert_eq!(e.syslog_severity(), Some(&Value::from(3)));
    assert_eq!(e.missing_field(), Ok(()));
    assert_eq!(e.timestamp().map(|t| t.timestamp()), Ok(1_762_603_200));
    assert_eq!(Ok(e), by_map(raw.as_bytes(), &REQUIRED));
}

#[test]
fn escaped_strings_are_read_owned_and_unescaped() {
    let raw = format!(r#"{{"hostname":"h\u00e9","message":"a \"b\"\tc","_event_id":"{ID}"}}"#);
    let e = QueuedEvent::read_borrowed(raw.as_bytes(), &REQUIRED).expect("escapes in values are read");
    assert_eq!((e.hostname(), e.message()), (Some("hé"), Some("a \"b\"\tc")));
    assert_eq!(e.missing_field(), Err(EventError::MissingField("timestamp".into())));
    assert_eq!(Ok(e), by_map(raw.as_bytes(), &REQUIRED));
}

/// The messages the fast path leaves to the map, and what the map makes of them.
#[test]
fn unusual_messages_are_read_into_a_map() {
    let legacy = br#"{"hostname":"h","message":"m","timestamp":"2025-11-08T12:00:00Z"}"#;
    assert!(QueuedEvent::read_borrowed(legacy, &REQUIRED).is_none(), "no _event_id: derived from the map");
    let e = QueuedEvent::read(legacy, &REQUIRED).unwrap();
    assert_eq!(e.event_id(), Event::from_slice(legacy).unwrap().event_id());
    let escaped_key = format!(r#"{{"host\u006eame":"h","_event_id":"{ID}"}}"#);
    assert!(QueuedEvent::read_borrowed(escaped_key.as_bytes(), &REQUIRED).is_none());
    assert_eq!(QueuedEvent::read(escaped_key.as_bytes(), &REQUIRED).unwrap().hostname(), Some("h"));
    for (raw, want) in [(&b"[1]"[..], EventError::NotAnObject), (&b"null"[..], EventError::NotAnObject)] {
        assert_eq!(QueuedEvent::read(raw, &REQUIRED), Err(want));
    }
    for raw in [
        format!(r#"{{"x":1e400,"_event_id":"{ID}"}}"#),
        format!(r#"{{"x":"\ud800","_event_id":"{ID}"}}"#),
        format!(r#"{{"x":{{"y":["\udc00"]}},"_event_id":"{ID}"}}"#),
        format!(r#"{{"_event_id":"{ID}"}} x"#),
        format!(r#"{{"_event_id":"{ID}""#),
        format!("{}{{\"_event_id\":\"{ID}\"}}{}", "[".repeat(200), "]".repeat(200)),
        format!("{{\"x\":{}1{},\"_event_id\":\"{ID}\"}}", "[".repeat(200), "]".repeat(200)),
    ] {
        let got = QueuedEvent::read(raw.as_bytes(), &REQUIRED);
        assert!(matches!(got, Err(EventError::InvalidJson(_))), "{raw}: {got:?}");
        assert_eq!(got, by_map(raw.as_bytes(), &REQUIRED), "{raw}");
    }
}

#[test]
fn the_last_of_a_repeated_key_counts() {
    let raw = format!(
        r#"{{"message":"","hostname":"a","message":"m","hostname":"","_event_id":"nope","_event_id":"{ID}","_retry_count":1,"_retry_count":"2"}}"#
    );
    let e = QueuedEvent::read_borrowed(raw.as_bytes(), &REQUIRED).unwrap();
    assert_eq!((e.message(), e.hostname(), e.retry_count()), (Some("m"), Some(""), 2));
    assert_eq!(e.missing_field(), Err(EventError::MissingField("hostname".into())));
    assert_eq!(Ok(e), by_map(raw.as_bytes(), &REQUIRED));
}

/// A JSON value as text: forms every check treats differently, and (less often) ones a map
/// refuses.
fn arb_value() -> impl Strategy<Value = String> {
    let refused = prop_oneof![
        Just("1e400".to_string()),
        Just("\"\\ud800\"".to_string()),
        Just("{\"\\u0061\":1e400}".to_string()),
    ];
    let read = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        Just("0".to_string()),
        Just("-0.0".to_string()),
        Just("0.0".to_string()),
        Just("3".to_string()),
        Just("5.0".to_string()),
        Just("-7".to_string()),
        Just("18446744073709551616".to_string()),
        Just("0.5".to_string()),
        Just("[[],{}]".to_string()),
        Just("\"\"".to_string()),
        Just("\"\\u0031\"".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("[0]".to_string()),
        Just("{\"a\":{\"b\":[1,\"\\u00e9\"]}}".to_string()),
        Just(format!("\"{ID}\"")),
        Just("\"01900000-0000-7000-8000-00000000000\"".to_string()),
        Just("\"2025-11-08T12:00:00Z\"".to_string()),
        Just("\"2025-11-08 13:00:00+01:00\"".to_string()),
        Just("\"yesterday\"".to_string()),
        Just("\".1.3.6.1.4\"".to_string()),
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
        "[a-z \"\\\\]{0,6}".prop_map(|s| serde_json::to_string(&s).unwrap()),
    ];
    prop_oneof![20 => read, 1 => refused]
}

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("hostname"),
        Just("message"),
        Just("timestamp"),
        Just("trap_oid"),
        Just("syslog_severity"),
        Just("_correlation_id"),
        Just("_event_id"),
        Just("_retry_count"),
        Just("team"),
        Just("team"),
        Just("team"),
        Just("host\\u006eame"),
        Just("x"),
    ]
    .prop_map(String::from)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// The fast path's answers are the map's: for every field the alerter reads, for the
    /// required-field check and for refusals (error texts included), whatever the keys'
    /// order, repeats and escapes.
    #[test]
    fn reads_what_a_map_reads(
        fields in proptest::collection::vec((arb_key(), arb_value()), 0..10),
        with_id in any::<bool>(),
        spaced in any::<bool>(),
        required in prop_oneof![Just(vec![]), Just(REQUIRED.to_vec()), Just(vec!["team", "hostname", "team"])],
    ) {
        let sep = if spaced { " , " } else { "," };
        let mut parts: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        if with_id {
            parts.push(format!("\"_event_id\":\"{ID}\""));
        }
        let raw = format!("{{{}}}", parts.join(sep));
        let got = QueuedEvent::read(raw.as_bytes(), &required);
        let want = by_map(raw.as_bytes(), &required);
        prop_assert_eq!(&got, &want, "{}", raw);
        if let (Ok(got), Ok(want)) = (&got, &want) {
            prop_assert_eq!(got.timestamp(), want.timestamp());
            prop_assert_eq!(got.missing_field(), want.missing_field());
            prop_assert_eq!(got.correlation_id(), want.correlation_id());
        }
    }
}
