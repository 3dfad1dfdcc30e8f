//! The placeholders of `run --target-cmd` and `--target-config`: a gateway
//! the harness starts learns where the fakes are from its command line or
//! its config file, rendered once the fakes listen.
//!
//! A placeholder is `{` + a name of letters, digits, `_`, `.` and `-` +
//! `}`: `{fake.NAME.url}` and `{fake.NAME.port}` for an HTTP fake,
//! `{fake.NAME.command}` for a stdio fake (its whole command line, each
//! word shell-quoted where it needs to be), and `{config}` (the rendered
//! `--target-config` file, in `--target-cmd` only). Any other brace (a
//! TOML inline table, JSON, the shell's `${VAR}`) is text. A placeholder
//! of that shape that names nothing is an error, so a typo never reaches
//! the gateway as a literal.

use hyper::http::Uri;

use crate::scenario::FakeAddress;
use crate::shell;

/// A placeholder that names nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown placeholder {{{name}}}{hint}; known: {known}")]
pub(crate) struct UnknownPlaceholder {
    /// The name between the braces.
    pub(crate) name: String,
    /// What would have made it known, if anything.
    hint: String,
    /// The names that are known, as placeholders.
    known: String,
}

/// What is being rendered: it decides what an unknown `{config}` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rendering {
    /// The `--target-cmd` command line.
    Command,
    /// The `--target-config` template.
    ConfigTemplate,
}

/// The values placeholders stand for, in one run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Placeholders {
    values: Vec<(String, String)>,
}

impl Placeholders {
    /// The placeholders of the fakes `addresses` (name, address).
    pub(crate) fn of_fakes<'a>(
        addresses: impl IntoIterator<Item = (&'a str, FakeAddress)>,
    ) -> Placeholders {
        let mut values = Vec::new();
        for (name, address) in addresses {
            match address {
                FakeAddress::Http { url } => {
                    if let Some(port) = url.parse::<Uri>().ok().and_then(|u| u.port_u16()) {
                        values.push((format!("fake.{name}.port"), port.to_string()));
                    }
                    values.push((format!("fake.{name}.url"), url));
                }
                FakeAddress::Stdio { command, args } => {
                    let words: Vec<String> = std::iter::once(command.as_str())
                        .chain(args.iter().map(String::as_str))
                        .map(shell::quote)
                        .collect();
                    values.push((format!("fake.{name}.command"), words.join(" ")));
                }
            }
        }
        Placeholders { values }
    }

    /// Adds `{name}` standing for `value`.
    pub(crate) fn set(&mut self, name: &str, value: String) {
        self.values.push((name.to_owned(), value));
    }

    /// `text` with every placeholder replaced.
    pub(crate) fn render(
        &self,
        text: &str,
        rendering: Rendering,
    ) -> Result<String, UnknownPlaceholder> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let name_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
                .unwrap_or(after.len());
            let shell_variable = out.ends_with('$');
            if name_len == 0 || !after[name_len..].starts_with('}') || shell_variable {
                // Not a placeholder: a brace of the text itself.
                out.push('{');
                rest = after;
                continue;
            }
            let name = &after[..name_len];
            let Some((_, value)) = self.values.iter().find(|(n, _)| n == name) else {
                return Err(self.unknown(name, rendering));
            };
            out.push_str(value);
            rest = &after[name_len + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn unknown(&self, name: &str, rendering: Rendering) -> UnknownPlaceholder {
        let hint = match (name, rendering) {
            ("config", Rendering::Command) => {
                " (it is the rendered --target-config file: give one)"
            }
            ("config", Rendering::ConfigTemplate) => {
                " (it is this file once rendered: use it in --target-cmd)"
            }
            _ => "",
        }
        .to_owned();
        let known: Vec<String> = self
            .values
            .iter()
            .map(|(n, _)| format!("{{{n}}}"))
            .collect();
        UnknownPlaceholder {
            name: name.to_owned(),
            hint,
            known: if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placeholders() -> Placeholders {
        let mut p = Placeholders::of_fakes([
            (
                "files",
                FakeAddress::Http {
                    url: "http://127.0.0.1:18001/mcp".into(),
                },
            ),
            (
                "local",
                FakeAddress::Stdio {
                    command: "/opt/mcp harness/mcp-harness".into(),
                    args: vec!["fake-backend".into(), "--fake".into(), "it's".into()],
                },
            ),
        ]);
        p.set("config", "/tmp/run/peer.toml".into());
        p
    }

    #[test]
    fn fakes_and_the_config_are_substituted() {
        let rendered = placeholders()
            .render(
                "serve --config {config} --url {fake.files.url} --port {fake.files.port}",
                Rendering::Command,
            )
            .unwrap();
        assert_eq!(
            rendered,
            "serve --config /tmp/run/peer.toml --url http://127.0.0.1:18001/mcp --port 18001"
        );
        assert_eq!(
            placeholders()
                .render("{fake.local.command}", Rendering::Command)
                .unwrap(),
            r"'/opt/mcp harness/mcp-harness' fake-backend --fake 'it'\''s'"
        );
    }

    #[test]
    fn other_braces_are_text() {
        let toml = "x = { a = 1 }\ny = {}\nz = \"{fake.files.url}\"\njson = {\"k\": 1} {";
        assert_eq!(
            placeholders()
                .render(toml, Rendering::ConfigTemplate)
                .unwrap(),
            "x = { a = 1 }\ny = {}\nz = \"http://127.0.0.1:18001/mcp\"\njson = {\"k\": 1} {"
        );
    }

    #[test]
    fn an_unknown_placeholder_is_named() {
        let error = placeholders()
            .render("url = {fake.file.url}", Rendering::ConfigTemplate)
            .unwrap_err();
        assert_eq!(error.name, "fake.file.url");
        assert_eq!(
            error.to_string(),
            "unknown placeholder {fake.file.url}; known: {fake.files.port}, {fake.files.url}, {fake.local.command}, {config}"
        );
        let error = Placeholders::default()
            .render("--config {config}", Rendering::Command)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown placeholder {config} (it is the rendered --target-config file: give one); known: none"
        );
        let error = Placeholders::default()
            .render("include = \"{config}\"", Rendering::ConfigTemplate)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown placeholder {config} (it is this file once rendered: use it in --target-cmd); known: none"
        );
    }

    #[test]
    fn a_shell_variable_is_text() {
        assert_eq!(
            placeholders()
                .render(
                    "env HOME=${HOME} gw --url {fake.files.url} ${X:-{fake.files.port}}",
                    Rendering::Command
                )
                .unwrap(),
            "env HOME=${HOME} gw --url http://127.0.0.1:18001/mcp ${X:-18001}"
        );
    }
}
