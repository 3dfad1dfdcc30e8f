//! The second loading stage: a strict `serde` deserializer over the
//! [`Node`] tree, whose errors know *where* they happened.
//!
//! Serde builds errors deep inside visitors that know nothing about lines or
//! paths, so the location is added on the way out: every
//! [`NodeDeserializer`] method stamps its node's line on an error that has
//! none yet (so the innermost node wins), and the map and list accessors
//! prepend their path segment as the error bubbles up. Errors raised while
//! reading a *key* (`unknown key`) get the key's line and the path of the
//! table that contains it.
//!
//! Type mismatches are reported from the deserializer itself (it knows
//! what was asked for and what the node holds), so messages read
//! `expected a string, found a list` rather than naming Rust types.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, Visitor};

use super::ConfigError;
use super::source::{Entry, Node, Seg, Value, path_string};

/// A deserialization error with its location.
#[derive(Debug)]
pub(crate) struct DeError {
    line: Option<usize>,
    /// The key path, innermost segment first (segments are pushed as the
    /// error travels outwards).
    rev_path: Vec<Seg>,
    message: String,
}

impl DeError {
    fn new(message: String) -> Self {
        Self {
            line: None,
            rev_path: Vec::new(),
            message,
        }
    }

    /// Records `line` unless an inner node already did.
    fn at(mut self, line: usize) -> Self {
        self.line.get_or_insert(line);
        self
    }

    /// Records that the error happened under `seg`.
    fn under(mut self, seg: Seg) -> Self {
        self.rev_path.push(seg);
        self
    }

    /// The error as the loader reports it (the file is filled in later).
    pub(crate) fn into_config_error(self) -> ConfigError {
        let path: Vec<Seg> = self.rev_path.into_iter().rev().collect();
        ConfigError {
            file: String::new(),
            line: self.line,
            path: path_string(&path),
            message: self.message,
        }
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

/// Describes serde's idea of a found value in the words of [`Value::describe`].
fn unexpected(unexp: de::Unexpected<'_>) -> String {
    use de::Unexpected as U;
    match unexp {
        U::Bool(b) => format!("a boolean ({b})"),
        U::Unsigned(n) => format!("an integer ({n})"),
        U::Signed(n) => format!("an integer ({n})"),
        U::Float(x) => format!("a number ({x})"),
        U::Str(s) => format!("a string ({s:?})"),
        U::Unit | U::Option => "nothing (null)".into(),
        U::Seq => "a list".into(),
        U::Map => "a table".into(),
        other => other.to_string(),
    }
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self::new(msg.to_string())
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::new(format!("expected {exp}, found {}", unexpected(unexp)))
    }

    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::new(format!("expected {exp}, found {}", unexpected(unexp)))
    }

    fn unknown_field(field: &str, _expected: &'static [&'static str]) -> Self {
        Self::new(format!("unknown key {field:?}"))
    }

    fn missing_field(field: &'static str) -> Self {
        Self::new(format!("missing key {field:?}"))
    }

    fn duplicate_field(field: &'static str) -> Self {
        Self::new(format!("duplicate key {field:?}"))
    }
}

/// Deserializes `T` from `node`.
pub fn from_node<'de, T: de::Deserialize<'de>>(node: &Node) -> Result<T, ConfigError> {
    T::deserialize(NodeDeserializer(node)).map_err(DeError::into_config_error)
}

/// A deserializer for one node of the tree.
pub(crate) struct NodeDeserializer<'a>(pub(crate) &'a Node);

impl NodeDeserializer<'_> {
    /// The wrong-type error: `expected {expected}, found {what the node is}`.
    fn mismatch(&self, expected: &str) -> DeError {
        let found = self.0.value.describe();
        let hint = match (&self.0.value, expected) {
            (Value::Bool(_) | Value::Int(_) | Value::Float(_), "a string") => {
                " (quote it to make it a string)"
            }
            _ => "",
        };
        DeError::new(format!("expected {expected}, found {found}{hint}"))
    }
}

macro_rules! integers {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let line = self.0.line;
            match &self.0.value {
                Value::Int(n) => visitor.visit_i64(*n),
                _ => Err(self.mismatch("an integer")),
            }
            .map_err(|e| e.at(line))
        }
    )*};
}

macro_rules! floats {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let line = self.0.line;
            match &self.0.value {
                Value::Float(x) => visitor.visit_f64(*x),
                Value::Int(n) => visitor.visit_i64(*n),
                _ => Err(self.mismatch("a number")),
            }
            .map_err(|e| e.at(line))
        }
    )*};
}

impl<'de> Deserializer<'de> for NodeDeserializer<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let line = self.0.line;
        match &self.0.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(n) => visitor.visit_i64(*n),
            Value::Float(x) => visitor.visit_f64(*x),
            Value::Str(s) => visitor.visit_str(s),
            Value::Datetime(_) => Err(self.mismatch("a string, number, list or table")),
            Value::Seq(items) => visitor.visit_seq(SeqAccess::new(items)),
            Value::Map(entries) => visitor.visit_map(MapAccess::new(entries)),
        }
        .map_err(|e| e.at(line))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let line = self.0.line;
        match &self.0.value {
            Value::Bool(b) => visitor.visit_bool(*b),
            _ => Err(self.mismatch("a boolean")),
        }
        .map_err(|e| e.at(line))
    }

    integers!(deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
              deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128);
    floats!(deserialize_f32 deserialize_f64);

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let line = self.0.line;
        match &self.0.value {
            Value::Str(s) => visitor.visit_str(s),
            _ => Err(self.mismatch("a string")),
        }
        .map_err(|e| e.at(line))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let line = self.0.line;
        match &self.0.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
        .map_err(|e| e.at(line))
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let line = self.0.line;
        match &self.0.value {
            Value::Null => visitor.visit_unit(),
            _ => Err(self.mismatch("nothing (null)")),
        }
        .map_err(|e| e.at(line))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let line = self.0.line;
        visitor.visit_newtype_struct(self).map_err(|e| e.at(line))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let line = self.0.line;
        match &self.0.value {
            Value::Seq(items) => visitor.visit_seq(SeqAccess::new(items)),
            _ => Err(self.mismatch("a list")),
        }
        .map_err(|e| e.at(line))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let line = self.0.line;
        match &self.0.value {
            Value::Map(entries) => visitor.visit_map(MapAccess::new(entries)),
            _ => Err(self.mismatch("a table")),
        }
        .map_err(|e| e.at(line))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    /// Only unit variants written as strings (`transport: stdio`).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let line = self.0.line;
        match &self.0.value {
            Value::Str(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            _ => Err(self.mismatch("a string")),
        }
        .map_err(|e| e.at(line))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

/// Walks a list, naming each item `[i]` in errors.
struct SeqAccess<'a> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
    len: usize,
}

impl<'a> SeqAccess<'a> {
    fn new(items: &'a [Node]) -> Self {
        Self {
            items: items.iter().enumerate(),
            len: items.len(),
        }
    }
}

impl<'de> de::SeqAccess<'de> for SeqAccess<'_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            None => Ok(None),
            Some((i, node)) => seed
                .deserialize(NodeDeserializer(node))
                .map(Some)
                .map_err(|e| e.under(Seg::Index(i))),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.len)
    }
}

/// Walks a table, naming each value by its key in errors.
struct MapAccess<'a> {
    entries: std::slice::Iter<'a, Entry>,
    current: Option<&'a Entry>,
    len: usize,
}

impl<'a> MapAccess<'a> {
    fn new(entries: &'a [Entry]) -> Self {
        Self {
            entries: entries.iter(),
            current: None,
            len: entries.len(),
        }
    }
}

impl<'de> de::MapAccess<'de> for MapAccess<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.current = Some(entry);
        // A key error (`unknown key`) belongs to the containing table: no
        // path segment, but the key's own line.
        seed.deserialize(KeyDeserializer(&entry.key))
            .map(Some)
            .map_err(|e| e.at(entry.key_line))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let entry = self
            .current
            .take()
            .ok_or_else(|| DeError::new("a value was read before its key".into()))?;
        seed.deserialize(NodeDeserializer(&entry.value))
            .map_err(|e| e.under(Seg::Key(entry.key.clone())))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.len)
    }
}

/// A map key: always a string.
struct KeyDeserializer<'a>(&'a str);

impl<'de> Deserializer<'de> for KeyDeserializer<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_str(self.0)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;
    use crate::config::Format;
    use crate::config::source::parse;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        items: Vec<Inner>,
        #[serde(default)]
        count: Option<u32>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        name: String,
        #[serde(default)]
        tags: BTreeMap<String, String>,
    }

    fn load(text: &str) -> Result<Outer, ConfigError> {
        from_node(&parse(text, Format::Yaml).unwrap())
    }

    fn err(text: &str) -> (Option<usize>, String, String) {
        let e = load(text).expect_err("should fail");
        (e.line, e.path, e.message)
    }

    #[test]
    fn reads_a_valid_tree() {
        let outer = load("items:\n  - name: a\n    tags: { x: y }\ncount: 3\n").unwrap();
        assert_eq!(outer.items[0].name, "a");
        assert_eq!(outer.items[0].tags["x"], "y");
        assert_eq!(outer.count, Some(3));
    }

    #[test]
    fn unknown_key_has_the_key_line_and_the_table_path() {
        let text = "items:\n  - name: a\n  - name: b\n\n    nmae: c\n";
        assert_eq!(
            err(text),
            (Some(5), "items[1]".into(), "unknown key \"nmae\"".into())
        );
        assert_eq!(
            err("items: []\nextra: 1\n"),
            (Some(2), "".into(), "unknown key \"extra\"".into())
        );
    }

    #[test]
    fn missing_key_has_the_table_line_and_path() {
        let text = "items:\n  - name: a\n  - tags: {}\n";
        assert_eq!(
            err(text),
            (Some(3), "items[1]".into(), "missing key \"name\"".into())
        );
    }

    #[test]
    fn wrong_types_say_what_was_expected_and_found() {
        assert_eq!(
            err("items:\n  - name: [1]\n"),
            (
                Some(2),
                "items[0].name".into(),
                "expected a string, found a list".into()
            )
        );
        assert_eq!(
            err("items:\n  - name: 12\n"),
            (
                Some(2),
                "items[0].name".into(),
                "expected a string, found an integer (12) (quote it to make it a string)".into()
            )
        );
        assert_eq!(
            err("items:\n  - name: a\n    tags:\n      k: [x]\n"),
            (
                Some(4),
                "items[0].tags.k".into(),
                "expected a string, found a list".into()
            )
        );
        assert_eq!(
            err("items: {}\n"),
            (
                Some(1),
                "items".into(),
                "expected a list, found a table".into()
            )
        );
        assert_eq!(
            err("items: []\ncount: -1\n"),
            (
                Some(2),
                "count".into(),
                "expected u32, found an integer (-1)".into()
            )
        );
    }
}
