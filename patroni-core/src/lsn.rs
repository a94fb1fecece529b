//! WAL positions.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A WAL position (log sequence number) as one 64-bit byte offset.
///
/// PostgreSQL and openGauss print it as `HI/LO` in hex (`0/3000060`); Patroni's member
/// keys store it as a plain integer. Both forms parse, so values from either source compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

/// Why a string is not a WAL position, kept with the offending text for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid WAL position {text:?}: expected HI/LO hex (e.g. 0/3000060) or a byte offset")]
pub struct LsnParseError {
    /// The text that failed to parse.
    pub text: String,
}

impl Lsn {
    /// The zero position, which servers report before any WAL exists.
    pub const ZERO: Lsn = Lsn(0);

    /// Bytes by which `self` is ahead of `other`, zero when it is behind: lag never goes negative.
    pub fn saturating_sub(self, other: Lsn) -> u64 {
        self.0.saturating_sub(other.0)
    }

    /// The `HI/LO` text form servers accept in SQL and commands.
    pub fn to_hi_lo(self) -> String {
        format!("{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = LsnParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || LsnParseError {
            text: s.to_string(),
        };
        let t = s.trim();
        if let Some((hi, lo)) = t.split_once('/') {
            let hi = u32::from_str_radix(hi, 16).map_err(|_| err())?;
            let lo = u32::from_str_radix(lo, 16).map_err(|_| err())?;
            Ok(Lsn(((hi as u64) << 32) | lo as u64))
        } else {
            t.parse::<u64>().map(Lsn).map_err(|_| err())
        }
    }
}

impl std::ops::Sub for Lsn {
    type Output = i128;

    /// Signed distance in bytes, so callers can tell ahead from behind.
    fn sub(self, rhs: Lsn) -> i128 {
        self.0 as i128 - rhs.0 as i128
    }
}

impl From<u64> for Lsn {
    fn from(v: u64) -> Self {
        Lsn(v)
    }
}

/// Serialised as Patroni does in member keys: a plain integer.
impl Serialize for Lsn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

/// Accepts an integer or either text form, since other tools write both.
impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(v) => Ok(Lsn(v)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms_and_prints_hi_lo() {
        assert_eq!("0/3000060".parse::<Lsn>().unwrap(), Lsn(0x3000060));
        assert_eq!(
            "1/3049568".parse::<Lsn>().unwrap(),
            Lsn((1 << 32) | 0x3049568)
        );
        assert_eq!("50331744".parse::<Lsn>().unwrap(), Lsn(50331744));
        assert_eq!(Lsn((1 << 32) | 0x5F3A1B8).to_string(), "1/5F3A1B8");
        assert_eq!(Lsn(0).to_hi_lo(), "0/0");
    }

    #[test]
    fn rejects_garbage_with_the_text() {
        for bad in ["", "x/1", "1/", "/1", "1/2/3", "-5", "0/1FFFFFFFF"] {
            let e = bad.parse::<Lsn>().unwrap_err();
            assert_eq!(e.text, bad);
        }
    }

    #[test]
    fn subtracts_signed_and_saturating() {
        assert_eq!(Lsn(10) - Lsn(4), 6);
        assert_eq!(Lsn(4) - Lsn(10), -6);
        assert_eq!(Lsn(4).saturating_sub(Lsn(10)), 0);
    }

    #[test]
    fn serde_round_trip_accepts_text() {
        let v: Lsn = serde_json::from_str("\"0/10\"").unwrap();
        assert_eq!(v, Lsn(16));
        assert_eq!(serde_json::to_string(&Lsn(16)).unwrap(), "16");
        assert!(serde_json::from_str::<Lsn>("\"zz\"").is_err());
    }
}
