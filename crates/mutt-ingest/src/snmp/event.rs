//! One received notification as an ingest event (the fields of deploy/snmptrapd's handler,
//! plus the structured ones it could not carry).

use async_snmp::notification::Notification;
use async_snmp::{Oid, Value, VarBind};
use serde_json::{Map, Value as Json, json};
use std::net::{IpAddr, SocketAddr};

/// `snmpTrapAddress.0` (RFC 3584 §3.1): set by a proxy that forwards a notification.
const SNMP_TRAP_ADDRESS: &str = "1.3.6.1.6.3.18.1.3.0";

/// The event for `notification`, received from `source` at `received_at`. The community is
/// never copied into it.
pub fn to_event(
    notification: &Notification,
    source: SocketAddr,
    received_at: chrono::DateTime<chrono::Utc>,
) -> Map<String, Json> {
    let (trap_oid, agent, version) = match notification {
        Notification::TrapV1 { trap, .. } => {
            let agent = IpAddr::from(trap.agent_addr());
            // 0.0.0.0 means the agent did not say; fall back like for v2c.
            let agent = (!agent.is_unspecified()).then_some(agent);
            (v1_trap_oid(trap.enterprise(), trap.generic_trap().as_i32(), trap.specific_trap()), agent, "v1")
        }
        Notification::TrapV2c { trap_oid, .. } => (dotted(trap_oid), None, "v2c"),
        Notification::InformV2c { trap_oid, .. } => (dotted(trap_oid), None, "v2c"),
        Notification::TrapV3 { trap_oid, .. } | Notification::InformV3 { trap_oid, .. } => {
            (dotted(trap_oid), None, "v3")
        }
    };
    let varbinds = notification.varbinds();
    let hostname =
        agent.map(|a| a.to_string()).or_else(|| proxied_address(varbinds)).unwrap_or_else(|| source.ip().to_string());
    let mut message = format!("{hostname} {trap_oid}");
    let mut list = Vec::with_capacity(varbinds.len());
    for vb in varbinds {
        let (oid, value) = (dotted(&vb.oid), value_text(&vb.value));
        message.push_str(&format!(" {oid}={value}"));
        list.push(json!({"oid": oid, "type": type_name(&vb.value), "value": value}));
    }
    let event = json!({
        "hostname": hostname,
        "message": message,
        "trap_oid": trap_oid,
        "uptime": notification.uptime(),
        "varbinds": list,
        "source": "snmp",
        "source_ip": source.ip().to_string(),
        "timestamp": received_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "snmp_version": version,
        "snmp_pdu": if notification.is_confirmed() { "inform" } else { "trap" },
    });
    match event {
        Json::Object(map) => map,
        _ => Map::new(),
    }
}

/// RFC 3584 §3.1: generic 0–5 → snmpTraps.{generic+1}; enterpriseSpecific →
/// enterprise.0.specific.
pub fn v1_trap_oid(enterprise: &Oid, generic: i32, specific: i32) -> String {
    if (0..=5).contains(&generic) {
        format!(".1.3.6.1.6.3.1.1.5.{}", generic + 1)
    } else {
        format!("{}.0.{specific}", dotted(enterprise))
    }
}

/// An OID with the leading dot net-snmp prints and the rules' `oid_prefix` use.
pub fn dotted(oid: &Oid) -> String {
    format!(".{oid}")
}

/// A value as text: strings as UTF-8 (else `0x` hex), OIDs dotted, time ticks as the number of
/// hundredths, the rest as async-snmp prints them.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::ObjectIdentifier(oid) => dotted(oid),
        Value::TimeTicks(t) => t.to_string(),
        other => other.to_string(),
    }
}

/// net-snmp's name of a value's type, as snmptrapd prints it and deploy/snmptrapd's handler
/// posts it (`STRING`, `OID`, `Timeticks`, …).
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Integer(_) => "INTEGER",
        Value::OctetString(b) if std::str::from_utf8(b).is_err() => "Hex-STRING",
        Value::OctetString(_) => "STRING",
        Value::Null => "NULL",
        Value::ObjectIdentifier(_) => "OID",
        Value::IpAddress(_) => "IpAddress",
        Value::Counter32(_) => "Counter32",
        Value::Gauge32(_) => "Gauge32",
        Value::UInteger32(_) => "UInteger32",
        Value::TimeTicks(_) => "Timeticks",
        Value::Opaque(_) => "Opaque",
        Value::Counter64(_) => "Counter64",
        Value::NoSuchObject => "noSuchObject",
        Value::NoSuchInstance => "noSuchInstance",
        Value::EndOfMibView => "endOfMibView",
        _ => "unknown",
    }
}

fn proxied_address(varbinds: &[VarBind]) -> Option<String> {
    varbinds.iter().find(|vb| vb.oid.to_string() == SNMP_TRAP_ADDRESS).and_then(|vb| match &vb.value {
        Value::IpAddress(a) => Some(IpAddr::from(*a).to_string()),
        _ => None,
    })
}

/// The decoding path of a raw datagram up to the varbind list, for robustness tests: the
/// message decoder and this module's formatting, without the socket.
pub fn decode_varbinds(datagram: &[u8]) -> Option<Vec<(String, String)>> {
    let decoded =
        async_snmp::message::Message::decode(bytes::Bytes::copy_from_slice(datagram), Default::default()).ok()?;
    let pdu = decoded.value.into_pdu()?;
    Some(pdu.varbinds().iter().map(|vb| (dotted(&vb.oid), value_text(&vb.value))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn v1_generic_and_specific_traps_convert_per_rfc_3584() {
        let ent: Oid = "1.3.6.1.4.1.9.9.41.2".parse().unwrap();
        assert_eq!(v1_trap_oid(&ent, 2, 0), ".1.3.6.1.6.3.1.1.5.3");
        assert_eq!(v1_trap_oid(&ent, 0, 0), ".1.3.6.1.6.3.1.1.5.1");
        assert_eq!(v1_trap_oid(&ent, 6, 17), ".1.3.6.1.4.1.9.9.41.2.0.17");
    }

    proptest! {
        #[test]
        fn arbitrary_datagrams_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode_varbinds(&data);
        }

        #[test]
        fn mutated_v2c_trap_never_panics(pos in 0usize..64, byte in any::<u8>(), cut in 0usize..80) {
            let mut data = V2C_TRAP.to_vec();
            let p = pos % data.len();
            data[p] = byte;
            data.truncate(cut.min(data.len()));
            let _ = decode_varbinds(&data);
        }
    }

    /// `snmptrap -v 2c -c public … 0 .1.3.6.1.4.1.9.9.41.2 .1.3.6.1.2.1.1.5.0 s hi`, captured.
    const V2C_TRAP: &[u8] = &[
        0x30, 0x50, 0x02, 0x01, 0x01, 0x04, 0x06, b'p', b'u', b'b', b'l', b'i', b'c', 0xa7, 0x43, 0x02, 0x04, 0x12,
        0x34, 0x56, 0x78, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x30, 0x35, 0x30, 0x0d, 0x06, 0x08, 0x2b, 0x06, 0x01,
        0x02, 0x01, 0x01, 0x03, 0x00, 0x43, 0x01, 0x00, 0x30, 0x14, 0x06, 0x0a, 0x2b, 0x06, 0x01, 0x06, 0x03, 0x01,
        0x01, 0x04, 0x01, 0x00, 0x06, 0x06, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x09, 0x30, 0x0e, 0x06, 0x08, 0x2b, 0x06,
        0x01, 0x02, 0x01, 0x01, 0x05, 0x00, 0x04, 0x02, b'h', b'i',
    ];

    #[test]
    fn the_captured_trap_decodes() {
        let vbs = decode_varbinds(V2C_TRAP).expect("decodes");
        assert_eq!(vbs[0].0, ".1.3.6.1.2.1.1.3.0");
        assert_eq!(vbs[2], (".1.3.6.1.2.1.1.5.0".to_string(), "hi".to_string()));
    }
}
