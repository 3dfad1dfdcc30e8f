//! The first loading stage: YAML or TOML text → one [`Node`] tree where every
//! value and every map key remembers its 1-based line.
//!
//! Both formats land in the same tree so that everything after this point
//! (expansion, deserialization, validation) is written once. The tree is
//! deliberately smaller than either format: YAML anchors, aliases, tags,
//! multiple documents, complex and non-string keys are rejected here with a
//! line number, rather than half-supported later. Duplicate YAML keys are
//! rejected too (TOML's parser already does), so a later key never silently
//! wins.

use std::fmt;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::{ConfigError, Format};

/// How deep lists and tables may nest. The schema needs 4 levels; the limit
/// only exists so hostile input cannot overflow the stack of the recursive
/// stages that follow.
const MAX_DEPTH: usize = 64;

/// One step of a key path: a table key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// `.key` (or the first key of the path).
    Key(String),
    /// `[index]`, 0-based.
    Index(usize),
}

/// A key path as shown in errors: `backends[1].env.LOG_LEVEL`.
///
/// Keys that are not plain identifiers are quoted (`headers."X.Y"`) so the
/// path stays unambiguous.
pub(crate) struct PathDisplay<'a>(pub(crate) &'a [Seg]);

impl fmt::Display for PathDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Index(n) => write!(f, "[{n}]")?,
                Seg::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !k.is_empty()
                        && k.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                    if bare {
                        f.write_str(k)?
                    } else {
                        write!(f, "{k:?}")?
                    }
                }
            }
        }
        Ok(())
    }
}

/// Renders a path as a string (see [`PathDisplay`]).
pub fn path_string(path: &[Seg]) -> String {
    PathDisplay(path).to_string()
}

/// A value with the line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// 1-based line of the value.
    pub line: usize,
    /// The value itself.
    pub value: Value,
}

/// The values both formats share.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// YAML `~`, `null` or an empty value (TOML has none).
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer that fits `i64`.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string (quoted, or a YAML plain scalar that is no other type).
    Str(String),
    /// A TOML date/time, kept only to report it as the wrong type.
    Datetime(String),
    /// A YAML sequence or TOML array (of tables).
    Seq(Vec<Node>),
    /// A YAML mapping or TOML table, in file order.
    Map(Vec<Entry>),
}

/// One key of a map, with the line of the key itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// 1-based line of the key.
    pub key_line: usize,
    /// The value under the key.
    pub value: Node,
}

impl Value {
    /// What the value is, for "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match self {
            Value::Null => "nothing (null)".into(),
            Value::Bool(b) => format!("a boolean ({b})"),
            Value::Int(n) => format!("an integer ({n})"),
            Value::Float(x) => format!("a number ({x})"),
            Value::Str(s) => format!("a string ({s:?})"),
            Value::Datetime(d) => format!("a date-time ({d})"),
            Value::Seq(_) => "a list".into(),
            Value::Map(_) => "a table".into(),
        }
    }
}

impl Node {
    /// The node at `path`, if every step exists.
    pub fn get(&self, path: &[Seg]) -> Option<&Node> {
        let mut node = self;
        for seg in path {
            node = node.child(seg)?;
        }
        Some(node)
    }

    fn child(&self, seg: &Seg) -> Option<&Node> {
        match (&self.value, seg) {
            (Value::Map(entries), Seg::Key(k)) => {
                entries.iter().find(|e| &e.key == k).map(|e| &e.value)
            }
            (Value::Seq(items), Seg::Index(i)) => items.get(*i),
            _ => None,
        }
    }

    /// The line of the value at `path`, or of the deepest part of `path`
    /// that exists (a defaulted key has no line of its own; its table does).
    pub fn line_near(&self, path: &[Seg]) -> usize {
        let mut node = self;
        for seg in path {
            match node.child(seg) {
                Some(next) => node = next,
                None => break,
            }
        }
        node.line
    }

    /// The line of the key that ends `path` (`backends[0].url` → the line of
    /// `url:`), falling back to [`Node::line_near`].
    pub fn key_line(&self, path: &[Seg]) -> usize {
        if let Some((Seg::Key(k), parent)) = path.split_last()
            && let Some(Node {
                value: Value::Map(entries),
                ..
            }) = self.get(parent)
            && let Some(e) = entries.iter().find(|e| &e.key == k)
        {
            return e.key_line;
        }
        self.line_near(path)
    }
}

/// Parses `text` in `format` into a tree. An empty document is an empty table.
pub fn parse(text: &str, format: Format) -> Result<Node, ConfigError> {
    match format {
        Format::Yaml => parse_yaml(text),
        Format::Toml => parse_toml(text),
    }
}

fn error(line: usize, path: &[Seg], message: impl Into<String>) -> ConfigError {
    ConfigError {
        file: String::new(),
        line: Some(line),
        path: path_string(path),
        message: message.into(),
    }
}

// ---------------------------------------------------------------- YAML ----

fn parse_yaml(text: &str) -> Result<Node, ConfigError> {
    let mut yaml = Yaml {
        parser: Parser::new_from_str(text),
        previous_line: 1,
        last_line: 1,
    };
    let mut root = None;
    loop {
        let (event, mark) = yaml.next()?;
        match event {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => break,
            Event::DocumentStart => {
                if root.is_some() {
                    return Err(error(
                        mark.line(),
                        &[],
                        "multiple YAML documents are not supported; keep one document per file",
                    ));
                }
                let (event, mark) = yaml.next()?;
                root = Some(yaml.node(event, mark, &mut Vec::new())?);
            }
            other => {
                return Err(error(
                    mark.line(),
                    &[],
                    format!("unexpected YAML event {other:?}"),
                ));
            }
        }
    }
    Ok(match root {
        None
        | Some(Node {
            value: Value::Null, ..
        }) => Node {
            line: 1,
            value: Value::Map(Vec::new()),
        },
        Some(node) => node,
    })
}

struct Yaml<'a> {
    parser: Parser<std::str::Chars<'a>>,
    /// Line of the event before the last one read.
    previous_line: usize,
    /// Line of the last event read.
    last_line: usize,
}

impl Yaml<'_> {
    fn next(&mut self) -> Result<(Event, Marker), ConfigError> {
        let (event, mark) = self.parser.next_token().map_err(|e| ConfigError {
            file: String::new(),
            line: Some(e.marker().line()),
            path: String::new(),
            message: format!("invalid YAML: {}", e.info()),
        })?;
        self.previous_line = self.last_line;
        self.last_line = mark.line();
        Ok((event, mark))
    }

    /// Builds the node that starts with `event`; `path` is where it sits.
    fn node(
        &mut self,
        event: Event,
        mark: Marker,
        path: &mut Vec<Seg>,
    ) -> Result<Node, ConfigError> {
        // An empty value (`key:` and nothing) is marked where the *next*
        // token starts, often a later line; the event before it (the key,
        // or the start of the list) is where a reader looks.
        let empty =
            matches!(&event, Event::Scalar(text, TScalarStyle::Plain, ..) if text.is_empty());
        let line = if empty {
            self.previous_line.min(mark.line())
        } else {
            mark.line()
        };
        if path.len() > MAX_DEPTH {
            return Err(error(
                line,
                path,
                format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        let value = match event {
            Event::Alias(_) => {
                return Err(error(line, path, "YAML aliases (*name) are not supported"));
            }
            Event::Scalar(text, style, anchor, tag) => {
                no_anchor_or_tag(anchor, tag.is_some(), line, path)?;
                scalar(text, style)
            }
            Event::SequenceStart(anchor, tag) => {
                no_anchor_or_tag(anchor, tag.is_some(), line, path)?;
                let mut items = Vec::new();
                loop {
                    let (event, mark) = self.next()?;
                    if event == Event::SequenceEnd {
                        break;
                    }
                    path.push(Seg::Index(items.len()));
                    let item = self.node(event, mark, path);
                    path.pop();
                    items.push(item?);
                }
                Value::Seq(items)
            }
            Event::MappingStart(anchor, tag) => {
                no_anchor_or_tag(anchor, tag.is_some(), line, path)?;
                let mut entries: Vec<Entry> = Vec::new();
                loop {
                    let (event, mark) = self.next()?;
                    if event == Event::MappingEnd {
                        break;
                    }
                    let key = self.key(event, mark, path)?;
                    if let Some(first) = entries.iter().find(|e| e.key == key) {
                        return Err(error(
                            mark.line(),
                            path,
                            format!("duplicate key {key:?} (first at line {})", first.key_line),
                        ));
                    }
                    let (event, vmark) = self.next()?;
                    path.push(Seg::Key(key.clone()));
                    let value = self.node(event, vmark, path);
                    path.pop();
                    entries.push(Entry {
                        key,
                        key_line: mark.line(),
                        value: value?,
                    });
                }
                Value::Map(entries)
            }
            other => {
                return Err(error(
                    line,
                    path,
                    format!("unexpected YAML event {other:?}"),
                ));
            }
        };
        Ok(Node { line, value })
    }

    /// Reads a map key: a scalar that resolves to a string.
    fn key(&mut self, event: Event, mark: Marker, path: &[Seg]) -> Result<String, ConfigError> {
        let line = mark.line();
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                no_anchor_or_tag(anchor, tag.is_some(), line, path)?;
                match scalar(text.clone(), style) {
                    Value::Str(s) => Ok(s),
                    other => Err(error(
                        line,
                        path,
                        format!(
                            "key {text:?} is {}, but keys must be strings; quote it",
                            other.describe()
                        ),
                    )),
                }
            }
            Event::Alias(_) => Err(error(line, path, "YAML aliases (*name) are not supported")),
            _ => Err(error(
                line,
                path,
                "keys must be strings, not lists or tables",
            )),
        }
    }
}

fn no_anchor_or_tag(
    anchor: usize,
    tagged: bool,
    line: usize,
    path: &[Seg],
) -> Result<(), ConfigError> {
    if anchor != 0 {
        return Err(error(line, path, "YAML anchors (&name) are not supported"));
    }
    if tagged {
        return Err(error(
            line,
            path,
            "YAML tags (!tag) are not supported; quote a value to make it a string",
        ));
    }
    Ok(())
}

/// Resolves a scalar with the YAML 1.2 core schema: quoted and block scalars
/// are strings; plain ones may be null, a boolean, an integer or a float.
fn scalar(text: String, style: TScalarStyle) -> Value {
    if style != TScalarStyle::Plain {
        return Value::Str(text);
    }
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    if let Some(n) = yaml_int(&text) {
        return Value::Int(n);
    }
    if is_yaml_float(&text)
        && let Ok(x) = text.parse::<f64>()
    {
        return Value::Float(x);
    }
    Value::Str(text)
}

/// `[-+]?[0-9]+`, `0o[0-7]+`, `0x[0-9a-fA-F]+` (values beyond `i64` stay strings).
fn yaml_int(s: &str) -> Option<i64> {
    if let Some(hex) = s.strip_prefix("0x") {
        return (!hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| i64::from_str_radix(hex, 16).ok())
            .flatten();
    }
    if let Some(oct) = s.strip_prefix("0o") {
        return (!oct.is_empty() && oct.bytes().all(|b| (b'0'..=b'7').contains(&b)))
            .then(|| i64::from_str_radix(oct, 8).ok())
            .flatten();
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_yaml_float(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match frac {
        None => !int.is_empty() && digits(int),
        Some(f) => digits(int) && digits(f) && !(int.is_empty() && f.is_empty()),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

// ---------------------------------------------------------------- TOML ----

fn parse_toml(text: &str) -> Result<Node, ConfigError> {
    let lines = LineIndex::new(text);
    let doc = toml_edit::Document::parse(text).map_err(|e| ConfigError {
        file: String::new(),
        line: Some(e.span().map_or(1, |s| lines.line(s.start))),
        path: String::new(),
        message: format!("invalid TOML: {}", e.message().trim_end()),
    })?;
    let toml = Toml { lines };
    Ok(toml.table(doc.as_table(), 1))
}

struct Toml {
    lines: LineIndex,
}

impl Toml {
    fn line(&self, span: Option<std::ops::Range<usize>>, fallback: usize) -> usize {
        span.map_or(fallback, |s| self.lines.line(s.start))
    }

    /// A `[table]`; implicit and dotted tables have no span, so they take
    /// the line of the key that names them (`fallback`).
    fn table(&self, table: &toml_edit::Table, fallback: usize) -> Node {
        let line = self.line(table.span(), fallback);
        let entries = table
            .iter()
            .map(|(key, item)| {
                let key_line = self.line(table.key(key).and_then(|k| k.span()), line);
                Entry {
                    key: key.to_owned(),
                    key_line,
                    value: self.item(item, key_line),
                }
            })
            .collect();
        Node {
            line,
            value: Value::Map(entries),
        }
    }

    fn item(&self, item: &toml_edit::Item, fallback: usize) -> Node {
        match item {
            toml_edit::Item::Value(v) => self.value(v, fallback),
            toml_edit::Item::Table(t) => self.table(t, fallback),
            toml_edit::Item::ArrayOfTables(a) => Node {
                line: self.line(a.span(), fallback),
                value: Value::Seq(a.iter().map(|t| self.table(t, fallback)).collect()),
            },
            // `Table::iter` skips empty items; kept total for safety.
            toml_edit::Item::None => Node {
                line: fallback,
                value: Value::Null,
            },
        }
    }

    fn value(&self, value: &toml_edit::Value, fallback: usize) -> Node {
        use toml_edit::Value as V;
        let line = self.line(value.span(), fallback);
        let value = match value {
            V::String(s) => Value::Str(s.value().clone()),
            V::Integer(n) => Value::Int(*n.value()),
            V::Float(x) => Value::Float(*x.value()),
            V::Boolean(b) => Value::Bool(*b.value()),
            V::Datetime(d) => Value::Datetime(d.value().to_string()),
            V::Array(items) => Value::Seq(items.iter().map(|v| self.value(v, line)).collect()),
            V::InlineTable(t) => Value::Map(
                t.iter()
                    .map(|(key, v)| {
                        let key_line = self.line(t.key(key).and_then(|k| k.span()), line);
                        Entry {
                            key: key.to_owned(),
                            key_line,
                            value: self.value(v, key_line),
                        }
                    })
                    .collect(),
            ),
        };
        Node { line, value }
    }
}

/// Byte offset → 1-based line.
struct LineIndex {
    newlines: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        Self {
            newlines: text.match_indices('\n').map(|(i, _)| i).collect(),
        }
    }

    fn line(&self, offset: usize) -> usize {
        self.newlines.partition_point(|&nl| nl < offset) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Result<Node, ConfigError> {
        parse(text, Format::Yaml)
    }

    fn toml(text: &str) -> Result<Node, ConfigError> {
        parse(text, Format::Toml)
    }

    fn err(result: Result<Node, ConfigError>) -> (Option<usize>, String, String) {
        let e = result.expect_err("should fail");
        (e.line, e.path, e.message)
    }

    #[test]
    fn yaml_scalars_follow_the_core_schema() {
        let node = yaml(
            "a: ~\nb: true\nc: 12\nd: -3\ne: 1.5\nf: 10s\ng: '12'\nh: 0x1f\ni: 1e3\nj:\nk: 127.0.0.1:8080\n",
        )
        .unwrap();
        let Value::Map(entries) = node.value else {
            panic!("not a map")
        };
        let values: Vec<_> = entries.into_iter().map(|e| e.value.value).collect();
        assert_eq!(
            values,
            vec![
                Value::Null,
                Value::Bool(true),
                Value::Int(12),
                Value::Int(-3),
                Value::Float(1.5),
                Value::Str("10s".into()),
                Value::Str("12".into()),
                Value::Int(31),
                Value::Float(1000.0),
                Value::Null,
                Value::Str("127.0.0.1:8080".into()),
            ]
        );
    }

    #[test]
    fn yaml_lines_of_keys_and_values() {
        let node =
            yaml("# comment\nproxy:\n  name: x\nbackends:\n  - name: a\n    args:\n      - one\n")
                .unwrap();
        assert_eq!(node.key_line(&[Seg::Key("proxy".into())]), 2);
        assert_eq!(
            node.line_near(&[Seg::Key("proxy".into()), Seg::Key("name".into())]),
            3
        );
        let b0 = [Seg::Key("backends".into()), Seg::Index(0)];
        assert_eq!(node.line_near(&b0), 5);
        let arg = [
            b0[0].clone(),
            b0[1].clone(),
            Seg::Key("args".into()),
            Seg::Index(0),
        ];
        assert_eq!(node.line_near(&arg), 7);
        // A missing key falls back to the deepest existing table.
        assert_eq!(
            node.line_near(&[b0[0].clone(), b0[1].clone(), Seg::Key("nope".into())]),
            5
        );
    }

    #[test]
    fn empty_yaml_values_are_on_their_key_line() {
        let node = yaml("a:\n\nb:\n  -\n  - x\n").unwrap();
        assert_eq!(node.line_near(&[Seg::Key("a".into())]), 1);
        assert_eq!(node.line_near(&[Seg::Key("b".into()), Seg::Index(0)]), 4);
    }

    #[test]
    fn yaml_rejects_unsupported_features() {
        let cases = [
            (
                "a: &x 1\nb: *x\n",
                1,
                "YAML anchors (&name) are not supported",
            ),
            (
                "a: !!str 1\n",
                1,
                "YAML tags (!tag) are not supported; quote a value to make it a string",
            ),
            (
                "a: 1\n---\nb: 2\n",
                2,
                "multiple YAML documents are not supported; keep one document per file",
            ),
            (
                "a:\n  1: x\n",
                2,
                "key \"1\" is an integer (1), but keys must be strings; quote it",
            ),
            (
                "? [a]\n: 1\n",
                1,
                "keys must be strings, not lists or tables",
            ),
        ];
        for (text, line, message) in cases {
            let (l, _, m) = err(yaml(text));
            assert_eq!((l, m.as_str()), (Some(line), message), "{text:?}");
        }
    }

    #[test]
    fn yaml_rejects_duplicate_keys_with_both_lines() {
        let (line, path, message) = err(yaml("backends:\n  - name: a\n    name: b\n"));
        assert_eq!(line, Some(3));
        assert_eq!(path, "backends[0]");
        assert_eq!(message, "duplicate key \"name\" (first at line 2)");
    }

    #[test]
    fn yaml_syntax_errors_carry_the_parser_line() {
        let (line, path, message) = err(yaml("a: 1\nb: [1, 2\n"));
        assert!(line.is_some());
        assert_eq!(path, "");
        assert!(message.starts_with("invalid YAML: "), "{message}");
    }

    #[test]
    fn empty_documents_are_empty_tables() {
        for text in ["", "# nothing\n", "---\n"] {
            assert_eq!(
                yaml(text).unwrap().value,
                Value::Map(Vec::new()),
                "{text:?}"
            );
        }
        assert_eq!(toml("").unwrap().value, Value::Map(Vec::new()));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let text = format!("a: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
        assert!(yaml(&text).is_err());
        let text = format!("a = {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
        assert!(toml(&text).is_err());
    }

    #[test]
    fn toml_lines_of_tables_keys_and_values() {
        let text = "[proxy]\nname = \"x\"\n\n[[backends]]\nname = \"a\"\nreconnect.initial = \"1s\"\n\n[[backends]]\nname = \"b\"\nenv = { A = \"1\",\n  B = \"2\" }\n";
        let node = toml(text).unwrap();
        let k = |s: &str| Seg::Key(s.into());
        assert_eq!(node.line_near(&[k("proxy")]), 1);
        assert_eq!(node.line_near(&[k("proxy"), k("name")]), 2);
        assert_eq!(node.line_near(&[k("backends"), Seg::Index(0)]), 4);
        assert_eq!(node.key_line(&[k("backends"), Seg::Index(0), k("name")]), 5);
        assert_eq!(
            node.line_near(&[k("backends"), Seg::Index(0), k("reconnect")]),
            6
        );
        assert_eq!(
            node.line_near(&[k("backends"), Seg::Index(0), k("reconnect"), k("initial")]),
            6
        );
        assert_eq!(node.line_near(&[k("backends"), Seg::Index(1)]), 8);
        assert_eq!(
            node.key_line(&[k("backends"), Seg::Index(1), k("env"), k("B")]),
            11
        );
    }

    #[test]
    fn toml_syntax_errors_carry_the_parser_line() {
        let (line, _, message) = err(toml("[proxy]\nname = \"x\"\nname = \"y\"\n"));
        assert_eq!(line, Some(3));
        assert!(message.starts_with("invalid TOML: "), "{message}");
    }

    #[test]
    fn paths_quote_keys_that_are_not_identifiers() {
        let path = [
            Seg::Key("backends".into()),
            Seg::Index(1),
            Seg::Key("headers".into()),
            Seg::Key("X.Y".into()),
        ];
        assert_eq!(path_string(&path), "backends[1].headers.\"X.Y\"");
        assert_eq!(path_string(&[]), "");
    }
}
