//! Byte sizes as the config writes them: an integer number of bytes, or a
//! string with a binary suffix, `"512KiB"`, `"4MiB"`, `"1GiB"`.
//!
//! Only the binary (1024-based) suffixes are accepted: `"4MB"` would
//! leave the reader unsure whether 10⁶ or 2²⁰ was meant.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// Parses `"4MiB"`-style sizes (or digits alone, as bytes).
pub(crate) fn parse_size(text: &str) -> Result<usize, String> {
    let invalid = || {
        format!(
            "invalid size {text:?}: write a number of bytes, or an integer with KiB, MiB or GiB, e.g. \"4MiB\""
        )
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let multiplier: usize = match suffix {
        "" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(invalid()),
    };
    if number.is_empty() {
        return Err(invalid());
    }
    number
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| format!("size {text:?} is too large"))
}

/// A byte count read from the config (integer or `"4MiB"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ByteSize(pub(crate) usize);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;

        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size in bytes such as 1048576 or \"4MiB\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                parse_size(v).map(ByteSize).map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                usize::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("size {v} is too large")))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!("size {v} is negative"))),
                }
            }
        }

        deserializer.deserialize_any(SizeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_suffixes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("4MiB"), Ok(4 * 1024 * 1024));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
    }

    #[test]
    fn rejects_other_forms() {
        for text in ["", "MiB", "4MB", "4 MiB", "4mib", "1.5MiB", "-1", "4KB"] {
            assert!(parse_size(text).is_err(), "{text:?}");
        }
        assert_eq!(
            parse_size("4MB").unwrap_err(),
            "invalid size \"4MB\": write a number of bytes, or an integer with KiB, MiB or GiB, e.g. \"4MiB\""
        );
        assert_eq!(
            parse_size("99999999999999999999GiB").unwrap_err(),
            "size \"99999999999999999999GiB\" is too large"
        );
    }
}
