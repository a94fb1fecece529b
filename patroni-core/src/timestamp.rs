//! Wall-clock timestamps for scheduled switchovers and the history key.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in wall-clock time, milliseconds since the Unix epoch (UTC).
///
/// Scheduled switchovers name a wall-clock instant (ISO 8601 with a zone, as Patroni's API
/// demands); leases use the monotonic `now` of an [`Observation`](crate::Observation) instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

/// Why a text is not an ISO 8601 timestamp with a zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp {text:?}: expected ISO 8601 with a time zone, e.g. 2026-11-26T10:00:00+00:00")]
pub struct TimestampParseError {
    /// The text that failed to parse.
    pub text: String,
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl FromStr for Timestamp {
    type Err = TimestampParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || TimestampParseError {
            text: s.to_string(),
        };
        let t = s.trim();
        let b = t.as_bytes();
        if b.len() < 20
            || b[4] != b'-'
            || b[7] != b'-'
            || !(b[10] == b'T' || b[10] == b' ')
            || b[13] != b':'
            || b[16] != b':'
        {
            return Err(err());
        }
        let num = |r: std::ops::Range<usize>| -> Result<i64, TimestampParseError> {
            t.get(r)
                .filter(|x| x.bytes().all(|c| c.is_ascii_digit()))
                .and_then(|x| x.parse().ok())
                .ok_or_else(err)
        };
        let (y, mo, d, h, mi, se) = (
            num(0..4)?,
            num(5..7)?,
            num(8..10)?,
            num(11..13)?,
            num(14..16)?,
            num(17..19)?,
        );
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
            return Err(err());
        }
        let mut rest = &t[19..];
        let mut millis = 0i64;
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac.bytes().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return Err(err());
            }
            let ms: String = frac[..digits]
                .chars()
                .chain("000".chars())
                .take(3)
                .collect();
            millis = ms.parse().map_err(|_| err())?;
            rest = &frac[digits..];
        }
        let offset_min = match rest {
            "Z" | "z" => 0,
            _ => {
                let sign = match rest.as_bytes().first() {
                    Some(b'+') => 1,
                    Some(b'-') => -1,
                    _ => return Err(err()),
                };
                let z = rest[1..].replace(':', "");
                if z.len() != 4 || !z.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(err());
                }
                let (oh, om): (i64, i64) = (
                    z[..2].parse().map_err(|_| err())?,
                    z[2..].parse().map_err(|_| err())?,
                );
                sign * (oh * 60 + om)
            }
        };
        let days = days_from_civil(y, mo, d);
        let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_min * 60;
        Ok(Timestamp(secs * 1000 + millis))
    }
}

impl fmt::Display for Timestamp {
    /// UTC with milliseconds and an explicit `+00:00`, the form Patroni writes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(1000);
        let ms = self.0.rem_euclid(1000);
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}+00:00",
            sod / 3600,
            sod % 3600 / 60,
            sod % 60
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_zones_and_fractions() {
        let utc: Timestamp = "2026-11-26T10:00:00+00:00".parse().unwrap();
        assert_eq!(utc, "2026-11-26T10:00:00Z".parse().unwrap());
        assert_eq!(utc, "2026-11-26T12:00:00+02:00".parse().unwrap());
        assert_eq!(utc, "2026-11-26 09:30:00-0030".parse().unwrap());
        assert_eq!(
            Timestamp(utc.0 + 250),
            "2026-11-26T10:00:00.25Z".parse().unwrap()
        );
        assert_eq!(
            "1970-01-01T00:00:00Z".parse::<Timestamp>().unwrap(),
            Timestamp(0)
        );
    }

    #[test]
    fn rejects_missing_zone_and_garbage() {
        for bad in [
            "2026-11-26T10:00:00",
            "tomorrow",
            "2026-13-01T00:00:00Z",
            "",
            "2026-11-26T10:00:00+2",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad}");
        }
    }

    #[test]
    fn display_round_trips() {
        for ms in [0i64, 1_795_000_123_456, -86_400_001] {
            let t = Timestamp(ms);
            assert_eq!(t.to_string().parse::<Timestamp>().unwrap(), t);
        }
    }
}
