//! The scenario's `proxy:` section: an `mcp-proxy` config in the proxy's own
//! schema, where a backend may say `fake: NAME` instead of its transport
//! keys, or `fake: [A, B, ...]` for a replica pool of HTTP fakes (its
//! `endpoints`).
//!
//! A string of the section may hold `{issuer.jwks_url}`: the URL of the
//! scenario's issuer's JWKS (`auth.jwt.jwks_url`), filled in like a fake's
//! address.
//!
//! The section is kept as a tree. At load time it is validated by the
//! proxy's own loader with placeholder addresses (so a typo in it is reported
//! exactly as `mcp-proxy check` would, with this file's line numbers); at run
//! time [`ProxySection::config_tree`] fills in the real addresses of the
//! fakes and the listen address.

use std::net::SocketAddr;
use std::path::Path;

use mcp_proxy::config::document::{Entry, Node, Seg, Value, load_tree};
use mcp_proxy::config::{Config, ConfigError};

use super::model::{FakeSpec, FakeTransport, Issuer, ProxySection};
use super::validate::{KeyPath, Validator};

/// The placeholder for the issuer's JWKS URL.
pub const JWKS_URL_PLACEHOLDER: &str = "{issuer.jwks_url}";

/// Transport keys a backend with `fake:` must not have: the fake decides them.
const TRANSPORT_KEYS: [&str; 8] = [
    "transport",
    "command",
    "args",
    "env",
    "cwd",
    "url",
    "endpoints",
    "headers",
];

/// How the proxy reaches one fake in a run.
#[derive(Debug, Clone, PartialEq)]
pub enum FakeAddress {
    /// Run this command (the harness binary in `fake-backend` mode).
    Stdio {
        /// The program.
        command: String,
        /// Its arguments.
        args: Vec<String>,
    },
    /// POST to this URL.
    Http {
        /// `http://127.0.0.1:PORT/mcp`.
        url: String,
    },
}

impl ProxySection {
    /// The proxy config tree for a run: each `fake:` replaced by the
    /// transport keys of `address(fake)`, `proxy.listen` set to `listen`
    /// and `proxy.seed` to the run's `seed` (one seed replays the whole run,
    /// the proxy's choices included).
    pub fn config_tree(
        &self,
        address: &dyn Fn(&str) -> FakeAddress,
        listen: SocketAddr,
        seed: u64,
    ) -> Node {
        let mut tree = self.tree.clone();
        if let Some(issuer) = &self.issuer
            && let FakeAddress::Http { url } = address(issuer)
        {
            fill_in_jwks_url(&mut tree, &url);
        }
        if let Value::Map(top) = &mut tree.value {
            if let Some(backends) = top.iter_mut().find(|e| e.key == "backends")
                && let Value::Seq(items) = &mut backends.value.value
            {
                for backend in items {
                    fill_in_fake(backend, address);
                }
            }
            set_setting(top, tree.line, "listen", Value::Str(listen.to_string()));
            // The config's integers are i64: the proxy takes the seed's low 63 bits.
            let proxy_seed = i64::try_from(seed & (i64::MAX as u64)).unwrap_or_default();
            set_setting(top, tree.line, "seed", Value::Int(proxy_seed));
        }
        tree
    }

    /// `admin.token` as the section writes it, for the harness's reads of
    /// `/admin/backends` (which a proxy with `auth:` answers only with it).
    pub fn admin_token(&self) -> Option<String> {
        let child = |node: &Node, key: &str| match &node.value {
            Value::Map(entries) => entries
                .iter()
                .find(|entry| entry.key == key)
                .map(|entry| entry.value.clone()),
            _ => None,
        };
        match child(&child(&self.tree, "admin")?, "token")?.value {
            Value::Str(token) => Some(token),
            _ => None,
        }
    }

    /// The validated proxy config for a run (see [`ProxySection::config_tree`]).
    pub fn config(
        &self,
        file: &str,
        base_dir: &Path,
        address: &dyn Fn(&str) -> FakeAddress,
        listen: SocketAddr,
        seed: u64,
    ) -> Result<Config, ConfigError> {
        load_tree(
            self.config_tree(address, listen, seed),
            file,
            base_dir,
            &|name| std::env::var(name).ok(),
        )
        .map_err(under_proxy)
    }
}

/// The config tree as JSON, which `mcp-proxy` reads as YAML (for `--proxy-bin`).
pub fn to_json(node: &Node) -> serde_json::Value {
    use serde_json::Value as J;
    match &node.value {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(n) => J::from(*n),
        Value::Float(x) => J::from(*x),
        Value::Str(s) | Value::Datetime(s) => J::String(s.clone()),
        Value::Seq(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => J::Object(
            entries
                .iter()
                .map(|e| (e.key.clone(), to_json(&e.value)))
                .collect(),
        ),
    }
}

/// Reads and validates the `proxy:` section of `root`; `None` when the
/// scenario has none (it then runs against `--target` gateways only).
pub(crate) fn read_section(
    v: &Validator<'_>,
    root: &Node,
    base_dir: &Path,
    fakes: &[FakeSpec],
    issuer: Option<&Issuer>,
) -> Result<Option<ProxySection>, ConfigError> {
    let path = KeyPath::default().key("proxy");
    let Some(tree) = root.get(&[Seg::Key("proxy".into())]) else {
        return Ok(None);
    };
    let section = section_of(v, tree, &path, fakes, issuer)?;
    // Every fake serves some backend of the section a run starts with (a
    // reload may leave one unused later).
    for (i, fake) in fakes.iter().enumerate() {
        if !section
            .backend_fakes
            .iter()
            .flatten()
            .any(|n| n == &fake.name)
        {
            return Err(v.error(
                &KeyPath::default().key("fakes").index(i).key("name"),
                format!("fake {:?} is not used by any proxy backend", fake.name),
            ));
        }
    }
    section.validate(v.file, base_dir, fakes, issuer)?;
    Ok(Some(section))
}

/// The section of `tree` (at `path`, for errors): each backend's fakes read
/// and checked, not yet validated as a proxy config.
pub(crate) fn section_of(
    v: &Validator<'_>,
    tree: &Node,
    path: &KeyPath,
    fakes: &[FakeSpec],
    issuer: Option<&Issuer>,
) -> Result<ProxySection, ConfigError> {
    if issuer.is_none()
        && let Some(line) = placeholder_line(tree)
    {
        return Err(ConfigError {
            file: v.file.to_owned(),
            line: Some(line),
            path: "proxy".into(),
            message: format!("{JWKS_URL_PLACEHOLDER} needs an `issuer:` section"),
        });
    }
    let mut backend_fakes = Vec::new();
    if let Value::Map(top) = &tree.value
        && let Some(backends) = top.iter().find(|e| e.key == "backends")
        && let Value::Seq(items) = &backends.value.value
    {
        for (i, backend) in items.iter().enumerate() {
            let bp = path.key("backends").index(i);
            let Value::Map(entries) = &backend.value else {
                backend_fakes.push(Vec::new());
                continue;
            };
            let Some(fake) = entries.iter().find(|e| e.key == "fake") else {
                backend_fakes.push(Vec::new());
                continue;
            };
            let names = fake_names(v, &fake.value, &bp.key("fake"), fakes)?;
            if let Some(extra) = entries
                .iter()
                .find(|e| TRANSPORT_KEYS.contains(&e.key.as_str()))
            {
                return Err(v.error(
                    &bp.key(&extra.key),
                    "a backend with `fake` gets its transport from the fake; remove this key",
                ));
            }
            backend_fakes.push(names);
        }
    }
    Ok(ProxySection {
        tree: tree.clone(),
        backend_fakes,
        issuer: issuer.map(|i| i.name.clone()),
    })
}

impl ProxySection {
    /// Validate the section as the proxy's own loader would, with
    /// placeholder addresses: what is checked is the section's own keys;
    /// the real addresses only exist once a run starts. (One port per
    /// fake, so the replicas of a pool differ.)
    pub(crate) fn validate(
        &self,
        file: &str,
        base_dir: &Path,
        fakes: &[FakeSpec],
        issuer: Option<&Issuer>,
    ) -> Result<Config, ConfigError> {
        let placeholder = |name: &str| match fakes.iter().position(|f| f.name == name) {
            None if issuer.is_some_and(|i| i.name == name) => FakeAddress::Http {
                url: "http://127.0.0.1:65535/jwks.json".into(),
            },
            Some(i) if matches!(fakes[i].transport, FakeTransport::Http { .. }) => {
                FakeAddress::Http {
                    url: format!("http://127.0.0.1:{}/mcp", i + 1),
                }
            }
            _ => FakeAddress::Stdio {
                command: "mcp-harness".into(),
                args: Vec::new(),
            },
        };
        self.config(
            file,
            base_dir,
            &placeholder,
            SocketAddr::from(([127, 0, 0, 1], 0)),
            0,
        )
    }
}

/// The fakes a backend's `fake:` names: one name, or a list of HTTP fakes
/// (a replica pool), each defined once in `fakes:` and named once here.
fn fake_names(
    v: &Validator<'_>,
    node: &Node,
    path: &KeyPath,
    fakes: &[FakeSpec],
) -> Result<Vec<String>, ConfigError> {
    let (names, pool): (Vec<(&Node, KeyPath)>, bool) = match &node.value {
        Value::Str(_) => (vec![(node, path.clone())], false),
        Value::Seq(items) if !items.is_empty() => (
            items
                .iter()
                .enumerate()
                .map(|(i, item)| (item, path.index(i)))
                .collect(),
            true,
        ),
        _ => {
            return Err(v.error(
                path,
                "expected the name of a fake, or a list of HTTP fakes for a replica pool",
            ));
        }
    };
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for (item, item_path) in names {
        let Value::Str(name) = &item.value else {
            return Err(v.error(&item_path, "expected the name of a fake"));
        };
        let Some(spec) = fakes.iter().find(|f| &f.name == name) else {
            return Err(v.error(&item_path, format!("no fake named {name:?}")));
        };
        if pool && !matches!(spec.transport, FakeTransport::Http { .. }) {
            return Err(v.error(
                &item_path,
                format!("fake {name:?} is not an HTTP fake; a replica pool lists HTTP fakes only"),
            ));
        }
        if out.contains(name) {
            return Err(v.error(&item_path, format!("fake {name:?} is listed twice")));
        }
        out.push(name.clone());
    }
    Ok(out)
}

/// Prefixes an error from the proxy's loader with the section's own path.
fn under_proxy(e: ConfigError) -> ConfigError {
    let path = if e.path.is_empty() {
        "proxy".to_owned()
    } else if e.path.starts_with('[') {
        format!("proxy{}", e.path)
    } else {
        format!("proxy.{}", e.path)
    };
    ConfigError { path, ..e }
}

fn fill_in_fake(backend: &mut Node, address: &dyn Fn(&str) -> FakeAddress) {
    let Value::Map(entries) = &mut backend.value else {
        return;
    };
    let Some(pos) = entries.iter().position(|e| e.key == "fake") else {
        return;
    };
    let fake = entries.remove(pos);
    let line = fake.key_line;
    let str_node = |s: &str| Node {
        line,
        value: Value::Str(s.to_owned()),
    };
    let entry = |key: &str, value: Node| Entry {
        key: key.to_owned(),
        key_line: line,
        value,
    };
    let filled = match &fake.value.value {
        Value::Str(name) => match address(name) {
            FakeAddress::Stdio { command, args } => vec![
                entry("transport", str_node("stdio")),
                entry("command", str_node(&command)),
                entry(
                    "args",
                    Node {
                        line,
                        value: Value::Seq(args.iter().map(|a| str_node(a)).collect()),
                    },
                ),
            ],
            FakeAddress::Http { url } => vec![
                entry("transport", str_node("http")),
                entry("url", str_node(&url)),
            ],
        },
        // A replica pool: validation made sure every name is an HTTP fake.
        Value::Seq(items) => {
            let urls = items
                .iter()
                .filter_map(|item| match &item.value {
                    Value::Str(name) => match address(name) {
                        FakeAddress::Http { url } => Some(str_node(&url)),
                        FakeAddress::Stdio { .. } => None,
                    },
                    _ => None,
                })
                .collect();
            vec![
                entry("transport", str_node("http")),
                entry(
                    "endpoints",
                    Node {
                        line,
                        value: Value::Seq(urls),
                    },
                ),
            ]
        }
        _ => return,
    };
    for (i, e) in filled.into_iter().enumerate() {
        entries.insert(pos + i, e);
    }
}

/// Sets `proxy.KEY` (the proxy's own settings) to `value`.
fn set_setting(top: &mut Vec<Entry>, line: usize, key: &str, value: Value) {
    let node = Node { line, value };
    let settings = match top.iter_mut().find(|e| e.key == "proxy") {
        Some(e) => e,
        None => {
            top.insert(
                0,
                Entry {
                    key: "proxy".into(),
                    key_line: line,
                    value: Node {
                        line,
                        value: Value::Map(Vec::new()),
                    },
                },
            );
            &mut top[0]
        }
    };
    if let Value::Map(keys) = &mut settings.value.value {
        match keys.iter_mut().find(|e| e.key == key) {
            Some(e) => e.value = node,
            None => keys.push(Entry {
                key: key.into(),
                key_line: line,
                value: node,
            }),
        }
    }
}

/// Replaces [`JWKS_URL_PLACEHOLDER`] in every string of `node` by `url`.
fn fill_in_jwks_url(node: &mut Node, url: &str) {
    match &mut node.value {
        Value::Str(s) if s.contains(JWKS_URL_PLACEHOLDER) => {
            *s = s.replace(JWKS_URL_PLACEHOLDER, url);
        }
        Value::Seq(items) => items.iter_mut().for_each(|n| fill_in_jwks_url(n, url)),
        Value::Map(entries) => entries
            .iter_mut()
            .for_each(|e| fill_in_jwks_url(&mut e.value, url)),
        _ => {}
    }
}

/// The line of the first string of `node` holding [`JWKS_URL_PLACEHOLDER`].
fn placeholder_line(node: &Node) -> Option<usize> {
    match &node.value {
        Value::Str(s) if s.contains(JWKS_URL_PLACEHOLDER) => Some(node.line),
        Value::Seq(items) => items.iter().find_map(placeholder_line),
        Value::Map(entries) => entries.iter().find_map(|e| placeholder_line(&e.value)),
        _ => None,
    }
}

impl ProxySection {
    /// Whether the section has a backend named `name`.
    pub(crate) fn has_backend(&self, name: &str) -> bool {
        match self
            .tree
            .get(&[Seg::Key("backends".into())])
            .map(|n| &n.value)
        {
            Some(Value::Seq(items)) => items.iter().any(|item| backend_name(item) == Some(name)),
            _ => false,
        }
    }
}

/// `base` with `patch` merged in, as a reload fault writes it: a JSON merge
/// patch (RFC 7396) over the tree — maps merge key by key, `null` removes a
/// key, anything else replaces — except `backends`, whose items are
/// matched by `name`: a named backend's keys merge into it, `remove: true`
/// takes it out, a new name is added at the end.
pub(crate) fn merge_patch(base: &Node, patch: &Node) -> Node {
    let mut merged = base.clone();
    merge_into(&mut merged, patch, false);
    merged
}

fn merge_into(base: &mut Node, patch: &Node, backends: bool) {
    match (&mut base.value, &patch.value) {
        (Value::Map(entries), Value::Map(changes)) => {
            for change in changes {
                let at = entries.iter().position(|e| e.key == change.key);
                match (at, &change.value.value) {
                    (Some(at), Value::Null) => {
                        entries.remove(at);
                    }
                    (None, Value::Null) => {}
                    (Some(at), _) => {
                        let is_backends = change.key == "backends";
                        merge_into(&mut entries[at].value, &change.value, is_backends);
                    }
                    (None, _) => entries.push(change.clone()),
                }
            }
        }
        (Value::Seq(items), Value::Seq(changes)) if backends => {
            for change in changes {
                let name = backend_name(change);
                let at = items.iter().position(|item| backend_name(item) == name);
                match at {
                    Some(at) if removes(change) => {
                        items.remove(at);
                    }
                    Some(at) => merge_into(&mut items[at], change, false),
                    None if removes(change) => {}
                    None => items.push(change.clone()),
                }
            }
        }
        _ => *base = patch.clone(),
    }
}

/// A backend item's `name`, if it has one.
pub(crate) fn backend_name(item: &Node) -> Option<&str> {
    match &item.value {
        Value::Map(entries) => entries
            .iter()
            .find_map(|e| match (&e.key[..], &e.value.value) {
                ("name", Value::Str(name)) => Some(name.as_str()),
                _ => None,
            }),
        _ => None,
    }
}

/// Whether a patch's backend item says `remove: true`.
pub(crate) fn removes(item: &Node) -> bool {
    match &item.value {
        Value::Map(entries) => entries
            .iter()
            .any(|e| e.key == "remove" && e.value.value == Value::Bool(true)),
        _ => false,
    }
}
