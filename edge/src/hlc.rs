//! Hybrid logical clock: physical milliseconds plus a logical counter, so every change a
//! node makes is stamped later than everything it has made or seen, even when wall clocks
//! disagree; ties between nodes are broken by the origin's id ([`Stamp`]).

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hlc {
    /// Milliseconds since the Unix epoch.
    pub wall: u64,
    pub logical: u32,
}

impl Hlc {
    /// Fixed width, so that the text orders as the clock does: 12 hex digits of
    /// milliseconds, then 6 of the counter.
    pub fn encode(self) -> String {
        format!("{:012x}{:06x}", self.wall, self.logical)
    }

    pub fn decode(s: &str) -> Option<Hlc> {
        if s.len() != 18 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(Hlc { wall: u64::from_str_radix(&s[..12], 16).ok()?, logical: u32::from_str_radix(&s[12..], 16).ok()? })
    }
}

impl std::fmt::Display for Hlc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.encode())
    }
}

/// A version's stamp: its clock reading and the node that made it. Versions order by
/// clock, then by origin, so any two nodes pick the same winner.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamp {
    #[serde(rename = "v", with = "hlc_text")]
    pub hlc: Hlc,
    #[serde(rename = "o")]
    pub origin: String,
}

mod hlc_text {
    use super::Hlc;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(h: &Hlc, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&h.encode())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hlc, D::Error> {
        let t = String::deserialize(d)?;
        Hlc::decode(&t).ok_or_else(|| serde::de::Error::custom(format!("'{t}' is not a clock reading")))
    }
}

/// A node's clock.
pub struct Clock {
    last: Mutex<Hlc>,
    now_ms: fn() -> u64,
}

fn system_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    pub fn new() -> Clock {
        Clock { last: Mutex::new(Hlc::default()), now_ms: system_ms }
    }

    #[cfg(test)]
    fn with_time(now_ms: fn() -> u64) -> Clock {
        Clock { last: Mutex::new(Hlc::default()), now_ms }
    }

    /// A reading for a local change: later than every earlier reading and every observed one.
    pub fn now(&self) -> Hlc {
        let wall = (self.now_ms)();
        let mut last = self.last.lock();
        *last = if wall > last.wall {
            Hlc { wall, logical: 0 }
        } else {
            Hlc { wall: last.wall, logical: last.logical + 1 }
        };
        *last
    }

    /// Take in a reading from another node (or from this node's own earlier life).
    pub fn observe(&self, seen: Hlc) {
        let mut last = self.last.lock();
        if seen > *last {
            *last = seen;
        }
    }

    /// The latest reading handed out or observed (nothing this clock hands out later is
    /// at or below it).
    pub fn peek(&self) -> Hlc {
        *self.last.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_orders_like_the_clock() {
        let a = Hlc { wall: 5, logical: 9 };
        let b = Hlc { wall: 6, logical: 0 };
        let c = Hlc { wall: 0x0fff_ffff_ffff, logical: 0xff_ffff };
        assert!(a.encode() < b.encode() && b.encode() < c.encode());
        for h in [a, b, c] {
            assert_eq!(Hlc::decode(&h.encode()), Some(h));
        }
        assert_eq!(Hlc::decode("xyz"), None);
        assert_eq!(Hlc::decode("00000000000g000000"), None);
    }

    #[test]
    fn readings_increase_even_when_the_wall_clock_stands_still_or_goes_back() {
        let clock = Clock::with_time(|| 1000);
        let a = clock.now();
        let b = clock.now();
        assert!(b > a);
        clock.observe(Hlc { wall: 5000, logical: 3 });
        let c = clock.now();
        assert_eq!(c, Hlc { wall: 5000, logical: 4 });
        clock.observe(Hlc { wall: 10, logical: 0 });
        assert!(clock.now() > c);
    }

    #[test]
    fn stamps_break_ties_by_origin() {
        let h = Hlc { wall: 1, logical: 0 };
        let a = Stamp { hlc: h, origin: "edge-a".into() };
        let b = Stamp { hlc: h, origin: "edge-b".into() };
        assert!(a < b);
        let later = Stamp { hlc: Hlc { wall: 1, logical: 1 }, origin: "a".into() };
        assert!(later > b);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, r#"{"v":"000000000001000000","o":"edge-a"}"#);
        assert_eq!(serde_json::from_str::<Stamp>(&json).unwrap(), a);
    }
}
