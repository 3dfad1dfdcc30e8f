//! Durations as the config writes them: a number and a unit, `"250ms"`,
//! `"10s"`, `"1.5s"`, `"2m"`, `"1h"`.
//!
//! The unit is mandatory: a bare `10` could mean seconds or milliseconds,
//! and guessing wrong turns a timeout into a hang, so it is an error that
//! says to add one. Units are `ms`, `s`, `m` and `h`; the number may have a
//! decimal fraction (`"1.5s"`, `"0.5m"`), computed exactly and truncated to
//! whole nanoseconds. No sign, no spaces, no compound forms (`"1m30s"`).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

const UNITS: &str = "ms, s, m, h";

/// Parses `"10s"`-style durations (as config files write them, and the
/// harness's command line); the error is the message to report.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() && unit.is_empty() {
        return Err(format!(
            "empty duration: write a number and a unit, e.g. \"10s\" (units: {UNITS})"
        ));
    }
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || (number.contains('.') && frac.is_empty())
    {
        return Err(invalid(text));
    }
    let unit_nanos: u128 = match unit {
        "" => return Err(no_unit(number)),
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3600 * 1_000_000_000,
        _ => return Err(invalid(text)),
    };
    // Past 30 digits the value overflows anyway; checking here keeps the
    // arithmetic below in range.
    if int.len() > 30 || frac.len() > 30 {
        return Err(too_large(text));
    }
    let int: u128 = int.parse().map_err(|_| invalid(text))?;
    let frac_nanos = if frac.is_empty() {
        0
    } else {
        let scale = 10u128.pow(frac.len() as u32);
        let frac: u128 = frac.parse().map_err(|_| invalid(text))?;
        frac * unit_nanos / scale
    };
    let nanos = int
        .checked_mul(unit_nanos)
        .and_then(|n| n.checked_add(frac_nanos))
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| too_large(text))?;
    Ok(Duration::from_nanos(nanos))
}

fn no_unit(number: impl fmt::Display) -> String {
    format!("duration {number} has no unit: write e.g. \"{number}s\" (units: {UNITS})")
}

fn invalid(text: &str) -> String {
    format!(
        "invalid duration {text:?}: write a number and a unit, e.g. \"250ms\" or \"10s\" (units: {UNITS})"
    )
}

fn too_large(text: &str) -> String {
    format!("duration {text:?} is too large")
}

/// A [`Duration`] read from the config (a string like `"10s"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConfigDuration(pub Duration);

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;

        impl Visitor<'_> for DurationVisitor {
            type Value = ConfigDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"10s\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ConfigDuration, E> {
                parse_duration(v).map(ConfigDuration).map_err(E::custom)
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ConfigDuration, E> {
                Err(E::custom(no_unit(v)))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ConfigDuration, E> {
                Err(E::custom(no_unit(v)))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ConfigDuration, E> {
                Err(E::custom(no_unit(v)))
            }
        }

        deserializer.deserialize_any(DurationVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn parses_fractions_exactly() {
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.5m"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("0.1s"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("1.0000000001s"), Ok(Duration::from_secs(1)));
    }

    #[test]
    fn a_bare_number_needs_a_unit() {
        assert_eq!(
            parse_duration("10").unwrap_err(),
            "duration 10 has no unit: write e.g. \"10s\" (units: ms, s, m, h)"
        );
    }

    #[test]
    fn rejects_everything_else() {
        for text in [
            "", "s", "10x", "10 s", "-5s", "+5s", "1m30s", ".5s", "5.s", "1.2.3s", "10S", "१s",
        ] {
            assert!(parse_duration(text).is_err(), "{text:?}");
        }
        assert_eq!(
            parse_duration("10x").unwrap_err(),
            "invalid duration \"10x\": write a number and a unit, e.g. \"250ms\" or \"10s\" (units: ms, s, m, h)"
        );
        assert!(
            parse_duration("99999999999999999999999h")
                .unwrap_err()
                .ends_with("is too large")
        );
        assert!(
            parse_duration(&format!("{}s", "9".repeat(100)))
                .unwrap_err()
                .ends_with("is too large")
        );
    }
}
