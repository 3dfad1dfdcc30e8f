//! The transport keys of a backend: `command`, `args`, `env` and `cwd` of
//! a stdio child, or the `url`s and `headers` of an HTTP backend; and the
//! string rules they share (no NUL, a URL with a scheme and host, a header
//! name that is an RFC 9110 token).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::super::raw::RawBackend;
use super::super::source::Seg;
use super::super::{ConfigError, TransportConfig};
use super::{Validator, child};

impl Validator<'_> {
    pub(super) fn stdio(
        &self,
        raw: &RawBackend,
        path: &[Seg],
        base_dir: &Path,
    ) -> Result<TransportConfig, ConfigError> {
        let Some(command) = raw.command.clone() else {
            return Err(self.error(
                path,
                "missing key \"command\" (required for transport \"stdio\")",
            ));
        };
        if command.trim().is_empty() {
            return Err(self.error(&child(path, "command"), "must not be empty"));
        }
        no_nul(&command).map_err(|m| self.error(&child(path, "command"), m))?;
        let args = raw.args.clone().unwrap_or_default();
        for (i, arg) in args.iter().enumerate() {
            let mut p = child(path, "args");
            p.push(Seg::Index(i));
            no_nul(arg).map_err(|m| self.error(&p, m))?;
        }
        let env = raw.env.clone().unwrap_or_default();
        for (name, value) in &env {
            let p = child(&child(path, "env"), name);
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(self.key_error(
                    &child(path, "env"),
                    name,
                    format!("invalid environment variable name {name:?}: it must be non-empty, without \"=\" or NUL"),
                ));
            }
            no_nul(value).map_err(|m| self.error(&p, m))?;
        }
        let cwd = match &raw.cwd {
            None => None,
            Some(dir) if dir.is_empty() => {
                return Err(self.error(&child(path, "cwd"), "must not be empty"));
            }
            Some(dir) => Some(base_dir.join(dir)),
        };
        Ok(TransportConfig::Stdio {
            command,
            args,
            env,
            cwd,
            inherit_env: raw.inherit_env.unwrap_or(false),
        })
    }

    /// The endpoints of an HTTP backend: its `url`, or each of `endpoints`,
    /// all sharing `headers`.
    pub(super) fn http(
        &self,
        raw: &RawBackend,
        path: &[Seg],
    ) -> Result<Vec<TransportConfig>, ConfigError> {
        let urls = self.urls(raw, path)?;
        let headers: BTreeMap<String, String> = raw.headers.clone().unwrap_or_default();
        let headers_path = child(path, "headers");
        let mut seen: HashMap<String, &str> = HashMap::new();
        for (name, value) in &headers {
            if !is_header_name(name) {
                return Err(self.key_error(
                    &headers_path,
                    name,
                    format!(
                        "invalid header name {name:?}: use letters, digits and !#$%&'*+-.^_`|~ only"
                    ),
                ));
            }
            if let Some(other) = seen.insert(name.to_ascii_lowercase(), name) {
                return Err(self.key_error(
                    &headers_path,
                    name,
                    format!("header {name:?} is also set as {other:?} (header names ignore case)"),
                ));
            }
            // The value is not echoed: it is often a secret.
            if value
                .chars()
                .any(|c| (c.is_ascii_control() && c != '\t') || c == '\u{7f}')
            {
                return Err(self.error(
                    &child(&headers_path, name),
                    "header value must not contain control characters (such as CR or LF)",
                ));
            }
        }
        Ok(urls
            .into_iter()
            .map(|url| TransportConfig::Http {
                url,
                headers: headers.clone(),
            })
            .collect())
    }
}

fn no_nul(s: &str) -> Result<(), String> {
    if s.contains('\0') {
        Err("must not contain a NUL character".into())
    } else {
        Ok(())
    }
}

/// `http://` or `https://`, parseable, with a host. The URL is not echoed
/// in messages: it may carry credentials.
pub(super) fn check_url(url: &str) -> Result<(), String> {
    let has_scheme = |scheme: &str| {
        url.get(..scheme.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
    };
    if !has_scheme("http://") && !has_scheme("https://") {
        return Err("URL must start with http:// or https://".into());
    }
    let parsed = url::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("URL has no host".into());
    }
    Ok(())
}

/// RFC 9110 `token`.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(check_url("http://127.0.0.1:9001/mcp").is_ok());
        assert!(check_url("HTTPS://example.com").is_ok());
        assert_eq!(
            check_url("ftp://x").unwrap_err(),
            "URL must start with http:// or https://"
        );
        assert_eq!(
            check_url("127.0.0.1:9001").unwrap_err(),
            "URL must start with http:// or https://"
        );
        assert_eq!(check_url("http://").unwrap_err(), "invalid URL: empty host");
        assert_eq!(
            check_url("http://[::1").unwrap_err(),
            "invalid URL: invalid IPv6 address"
        );
    }

    #[test]
    fn header_names() {
        assert!(is_header_name("Authorization"));
        assert!(is_header_name("X-Api-Key"));
        assert!(!is_header_name(""));
        assert!(!is_header_name("X Key"));
        assert!(!is_header_name("X:Key"));
        assert!(!is_header_name("Ключ"));
    }
}
