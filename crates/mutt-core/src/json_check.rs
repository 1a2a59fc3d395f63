//! Checking JSON the way `serde_json::Value` reads it, without building the value.
//!
//! A `RawValue` or `IgnoredAny` is only checked for syntax: numbers out of range (`1e400`) and
//! lone surrogate escapes (`"\ud800"`) pass them but fail a map. The ingestor (events queued as
//! the client wrote them) and the alerter ([`crate::QueuedEvent`]) must refuse exactly what a map
//! refuses, so both walk values with [`Truthy`].

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// Reads a JSON value as `serde_json::Value` would (numbers, escapes, nesting limit), keeps
/// nothing, and says whether it is truthy ([`crate::event::is_truthy`]).
#[derive(Clone, Copy)]
pub struct Truthy;

impl<'de> DeserializeSeed<'de> for Truthy {
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Truthy {
    type Value = bool;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<bool, E> {
        Ok(b)
    }
    fn visit_i64<E>(self, n: i64) -> Result<bool, E> {
        Ok(n != 0)
    }
    fn visit_u64<E>(self, n: u64) -> Result<bool, E> {
        Ok(n != 0)
    }
    fn visit_f64<E>(self, n: f64) -> Result<bool, E> {
        Ok(n != 0.0)
    }
    fn visit_str<E>(self, s: &str) -> Result<bool, E> {
        Ok(!s.is_empty())
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let mut any = false;
        while seq.next_element_seed(Truthy)?.is_some() {
            any = true;
        }
        Ok(any)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut any = false;
        // Keys are strings: read (escapes checked), not kept.
        while map.next_key_seed(Truthy)?.is_some() {
            map.next_value_seed(Truthy)?;
            any = true;
        }
        Ok(any)
    }
}
