use super::*;
use crate::event::Event;
use chrono::Weekday;
use serde_json::json;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn rule(id: i32, team: &str) -> Rule {
    // From JSON, so that fields other work adds to a rule take their defaults.
    serde_json::from_value(json!({
        "id": id, "match_string": "x", "trap_oid": null, "syslog_severity": null, "match_type": "contains",
        "priority": 1, "prod_handling": "Page_only", "dev_handling": "Ignore", "team_assignment": team,
        "is_active": true
    }))
    .unwrap()
}

fn event(v: serde_json::Value) -> Event {
    Event::from_value(v).unwrap()
}

fn silence(id: i64, matcher: Matcher, starts: &str, ends: Option<&str>, window: Option<WeeklyWindow>) -> Silence {
    Silence {
        id,
        spec: NewSilence {
            matcher,
            starts_at: t(starts),
            ends_at: ends.map(t),
            window,
            created_by: "ops".into(),
            comment: "upgrade".into(),
        },
        created_at: t(starts),
        expired_at: None,
        expired_by: None,
    }
}

fn berlin_sundays() -> WeeklyWindow {
    WeeklyWindow {
        days: vec![Weekday::Sun],
        start: "02:00".into(),
        duration_minutes: 120,
        time_zone: "Europe/Berlin".into(),
    }
}

#[test]
fn every_given_field_must_match() {
    let m = Matcher {
        host: Some("CORE-*".into()),
        team: Some("NETO".into()),
        message_contains: Some("link down".into()),
        ..Default::default()
    };
    let set = SilenceSet::compile(
        vec![silence(3, m, "2027-01-01T00:00:00Z", Some("2027-01-02T00:00:00Z"), None)],
        t("2027-01-01T00:00:00Z"),
    );
    let now = t("2027-01-01T12:00:00Z");
    let e = event(json!({"hostname": "core-7", "message": "LINK DOWN on ge-0/0/1"}));
    assert_eq!(set.silenced_by(&e, &rule(1, "NETO"), now), Some(3));
    assert_eq!(set.silenced_by(&e, &rule(1, "OTHER"), now), None);
    let other_host = event(json!({"hostname": "edge-7", "message": "LINK DOWN"}));
    assert_eq!(set.silenced_by(&other_host, &rule(1, "NETO"), now), None);
    let other_message = event(json!({"hostname": "core-7", "message": "link up"}));
    assert_eq!(set.silenced_by(&other_message, &rule(1, "NETO"), now), None);
}

#[test]
fn exact_host_rule_regex_and_oid_prefix() {
    let m = Matcher { host: Some("router1".into()), rule_id: Some(4), ..Default::default() };
    let r = Matcher { message_regex: Some("^bgp .* idle$".into()), ..Default::default() };
    let o = Matcher { trap_oid_prefix: Some(".1.3.6.1.4.1.9".into()), ..Default::default() };
    let set = SilenceSet::compile(
        vec![
            silence(1, m, "2027-01-01T00:00:00Z", Some("2027-02-01T00:00:00Z"), None),
            silence(2, r, "2027-01-01T00:00:00Z", Some("2027-02-01T00:00:00Z"), None),
            silence(5, o, "2027-01-01T00:00:00Z", Some("2027-02-01T00:00:00Z"), None),
        ],
        t("2027-01-01T00:00:00Z"),
    );
    let now = t("2027-01-15T00:00:00Z");
    let e = |v| event(v);
    assert_eq!(set.silenced_by(&e(json!({"hostname": "Router1", "message": "a"})), &rule(4, "T"), now), Some(1));
    assert_eq!(set.silenced_by(&e(json!({"hostname": "router10", "message": "a"})), &rule(4, "T"), now), None);
    assert_eq!(set.silenced_by(&e(json!({"hostname": "router1", "message": "a"})), &rule(5, "T"), now), None);
    assert_eq!(set.silenced_by(&e(json!({"hostname": "h", "message": "BGP peer idle"})), &rule(5, "T"), now), Some(2));
    let trap = |oid: &str| e(json!({"hostname": "h", "message": "t", "trap_oid": oid}));
    assert_eq!(set.silenced_by(&trap("1.3.6.1.4.1.9.9.41.2"), &rule(5, "T"), now), Some(5));
    assert_eq!(set.silenced_by(&trap(".1.3.6.1.4.1.9"), &rule(5, "T"), now), Some(5));
    assert_eq!(set.silenced_by(&trap("1.3.6.1.4.1.99.1"), &rule(5, "T"), now), None);
}

#[test]
fn starts_ends_and_expires_early() {
    let m = Matcher { host: Some("h".into()), ..Default::default() };
    let mut s = silence(1, m, "2027-01-01T10:00:00Z", Some("2027-01-01T11:00:00Z"), None);
    let e = event(json!({"hostname": "h", "message": "m"}));
    let set = SilenceSet::compile(vec![s.clone()], t("2027-01-01T09:00:00Z"));
    assert_eq!(s.state(t("2027-01-01T09:59:59Z")), SilenceState::Pending);
    assert_eq!(set.silenced_by(&e, &rule(1, "T"), t("2027-01-01T09:59:59Z")), None);
    assert_eq!(set.silenced_by(&e, &rule(1, "T"), t("2027-01-01T10:00:00Z")), Some(1));
    assert_eq!(set.silenced_by(&e, &rule(1, "T"), t("2027-01-01T10:59:59Z")), Some(1));
    assert_eq!(set.silenced_by(&e, &rule(1, "T"), t("2027-01-01T11:00:00Z")), None);
    assert_eq!(s.state(t("2027-01-01T11:00:00Z")), SilenceState::Expired);
    s.expired_at = Some(t("2027-01-01T10:30:00Z"));
    assert_eq!(s.state(t("2027-01-01T10:29:00Z")), SilenceState::Active);
    assert_eq!(s.state(t("2027-01-01T10:30:00Z")), SilenceState::Expired);
    assert!(SilenceSet::compile(vec![s], t("2027-01-01T10:31:00Z")).is_empty());
}

#[test]
fn refuses_bad_silences_naming_the_field() {
    let ok = NewSilence {
        matcher: Matcher { host: Some("h".into()), ..Default::default() },
        starts_at: t("2027-01-01T10:00:00Z"),
        ends_at: Some(t("2027-01-01T11:00:00Z")),
        window: None,
        created_by: "ops".into(),
        comment: "c".into(),
    };
    assert_eq!(ok.validate(), Ok(()));
    let field = |s: NewSilence| s.validate().unwrap_err().field();
    assert_eq!(field(NewSilence { matcher: Matcher::default(), ..ok.clone() }), "matcher");
    assert_eq!(field(NewSilence { ends_at: None, ..ok.clone() }), "ends_at");
    assert_eq!(field(NewSilence { ends_at: Some(t("2027-01-01T09:00:00Z")), ..ok.clone() }), "ends_at");
    assert_eq!(field(NewSilence { comment: " ".into(), ..ok.clone() }), "comment");
    let bad_regex = Matcher { message_regex: Some("(".into()), ..Default::default() };
    assert_eq!(field(NewSilence { matcher: bad_regex, ..ok.clone() }), "message_regex");
    let bad_oid = Matcher { trap_oid_prefix: Some("1.3.x".into()), ..Default::default() };
    assert_eq!(field(NewSilence { matcher: bad_oid, ..ok.clone() }), "trap_oid_prefix");
    let w = berlin_sundays();
    let window = |w: WeeklyWindow| NewSilence { ends_at: None, window: Some(w), ..ok.clone() };
    assert_eq!(window(w.clone()).validate(), Ok(()));
    assert_eq!(field(window(WeeklyWindow { time_zone: "Mars/Olympus".into(), ..w.clone() })), "window.time_zone");
    assert_eq!(field(window(WeeklyWindow { start: "25:00".into(), ..w.clone() })), "window.start");
    assert_eq!(field(window(WeeklyWindow { duration_minutes: 0, ..w.clone() })), "window.duration_minutes");
    assert_eq!(field(window(WeeklyWindow { days: vec![], ..w })), "window.days");
}

#[test]
fn glob() {
    assert!(glob_match(b"core-*", b"core-1"));
    assert!(glob_match(b"*-rtr-?", b"fra-rtr-1"));
    assert!(!glob_match(b"core-*", b"edge-1"));
    assert!(glob_match(b"*", b""));
    assert!(!glob_match(b"a?", b"a"));
    assert!(glob_match(b"a*b*c", b"aXbYbZc"));
}

/// 2027-03-28 is the spring-forward Sunday in Berlin (02:00 CET → 03:00 CEST at 01:00 UTC).
#[test]
fn window_on_the_spring_forward_day_lasts_one_real_hour() {
    let w = berlin_sundays().compile().unwrap();
    assert!(!w.contains(t("2027-03-28T00:59:59Z"))); // 01:59:59 CET
    assert!(w.contains(t("2027-03-28T01:00:00Z"))); // 03:00 CEST
    assert!(w.contains(t("2027-03-28T01:59:59Z"))); // 03:59:59 CEST
    assert!(!w.contains(t("2027-03-28T02:00:00Z"))); // 04:00 CEST
    assert_eq!(w.next_after(t("2027-03-27T12:00:00Z")), Some((t("2027-03-28T01:00:00Z"), t("2027-03-28T02:00:00Z"))));
}

/// 2027-10-31 is the fall-back Sunday (03:00 CEST → 02:00 CET at 01:00 UTC).
#[test]
fn window_on_the_fall_back_day_lasts_three_real_hours() {
    let w = berlin_sundays().compile().unwrap();
    assert!(!w.contains(t("2027-10-30T23:59:59Z"))); // 01:59:59 CEST
    assert!(w.contains(t("2027-10-31T00:00:00Z"))); // 02:00 CEST
    assert!(w.contains(t("2027-10-31T01:30:00Z"))); // 02:30 CET, the second time
    assert!(w.contains(t("2027-10-31T02:59:59Z"))); // 03:59:59 CET
    assert!(!w.contains(t("2027-10-31T03:00:00Z"))); // 04:00 CET
    assert_eq!(w.next_after(t("2027-10-30T12:00:00Z")), Some((t("2027-10-31T00:00:00Z"), t("2027-10-31T03:00:00Z"))));
}

#[test]
fn window_on_an_ordinary_week_and_past_midnight() {
    let w = berlin_sundays().compile().unwrap();
    // Winter: CET is UTC+1.
    assert!(!w.contains(t("2027-01-10T00:59:59Z")));
    assert!(w.contains(t("2027-01-10T01:00:00Z")));
    assert!(!w.contains(t("2027-01-10T03:00:00Z")));
    assert!(!w.contains(t("2027-01-11T01:30:00Z"))); // a Monday
    let late = WeeklyWindow {
        days: vec![Weekday::Sat],
        start: "23:00".into(),
        duration_minutes: 180,
        time_zone: "UTC".into(),
    };
    assert_eq!(late.describe(), "Sat 23:00–02:00 +1d UTC");
    let late = late.compile().unwrap();
    assert!(late.contains(t("2027-01-10T01:59:00Z"))); // Sunday 01:59, from Saturday's occurrence
    assert!(!late.contains(t("2027-01-10T02:00:00Z")));
}

#[test]
fn window_silences_only_in_its_occurrences_and_range() {
    let m = Matcher { host: Some("core-*".into()), ..Default::default() };
    let s = silence(9, m, "2027-03-01T00:00:00Z", None, Some(berlin_sundays()));
    let set = SilenceSet::compile(vec![s.clone()], t("2027-03-01T00:00:00Z"));
    let e = event(json!({"hostname": "core-1", "message": "m"}));
    assert_eq!(set.silenced_by(&e, &rule(1, "T"), t("2027-03-28T01:30:00Z")), Some(9));
    assert_eq!(set.silenced_by(&e, &rule(1, "T"), t("2027-03-28T02:30:00Z")), None);
    assert_eq!(set.in_effect_count(t("2027-03-28T01:30:00Z")), 1);
    assert_eq!(set.in_effect_count(t("2027-03-28T02:30:00Z")), 0);
    assert_eq!(s.state(t("2027-03-28T02:30:00Z")), SilenceState::Active);
    assert!(in_effect(&s, t("2027-03-21T01:30:00Z")));
    assert_eq!(
        next_occurrence(&s, t("2027-03-28T01:30:00Z")),
        Some((t("2027-03-28T01:00:00Z"), t("2027-03-28T02:00:00Z")))
    );
}
