//! What the proxy tells clients about its authorization (MCP authorization,
//! RFC 9728): the protected-resource metadata document, the paths it is
//! served at, and the `WWW-Authenticate` values of a 401 and a 403, which
//! point to it.
//!
//! Everything is derived from `auth.resource` (the public URL clients
//! reach, never the listen address): the metadata lives at the resource's
//! origin under `/.well-known/oauth-protected-resource`, followed by the
//! resource's path when it has one (RFC 9728 §3.1).

use serde_json::{Value, json};

use super::AuthError;
use crate::config::AuthConfig;

/// The well-known path of protected-resource metadata.
const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// The longest `error_description` sent.
const MAX_DESCRIPTION: usize = 200;

/// The protected resource as clients see it.
pub(super) struct ResourceMetadata {
    resource: String,
    authorization_servers: Vec<String>,
    scopes_supported: Vec<String>,
    /// The resource URL's path, when other than `/` (no query).
    path: Option<String>,
    /// The URL of the metadata document.
    metadata_url: String,
}

impl ResourceMetadata {
    /// From `auth:`.
    pub(super) fn new(config: &AuthConfig) -> Self {
        let (origin, path) = match url::Url::parse(&config.resource) {
            Ok(url) if url.has_host() => {
                let path = Some(url.path()).filter(|path| !path.is_empty() && *path != "/");
                (url.origin().ascii_serialization(), path.map(str::to_owned))
            }
            // The config requires an absolute URL; should one get here
            // anyway, the metadata sits under it as given.
            _ => (config.resource.trim_end_matches('/').to_owned(), None),
        };
        let metadata_url = format!("{origin}{WELL_KNOWN}{}", path.as_deref().unwrap_or(""));
        Self {
            resource: config.resource.clone(),
            authorization_servers: config.authorization_servers.clone(),
            scopes_supported: config.scopes_supported.clone(),
            path,
            metadata_url,
        }
    }

    /// The RFC 9728 document.
    pub(super) fn document(&self) -> Value {
        json!({
            "resource": self.resource,
            "authorization_servers": self.authorization_servers,
            "scopes_supported": self.scopes_supported,
            "bearer_methods_supported": ["header"],
        })
    }

    /// Where the document is served.
    pub(super) fn paths(&self) -> Vec<String> {
        let mut paths = vec![WELL_KNOWN.to_owned()];
        if let Some(path) = &self.path {
            paths.push(format!("{WELL_KNOWN}{path}"));
        }
        paths
    }

    /// The `WWW-Authenticate` value of a 401.
    pub(super) fn challenge(&self, error: &AuthError) -> String {
        let metadata = quoted(&self.metadata_url);
        match error {
            AuthError::Missing => format!("Bearer resource_metadata={metadata}"),
            AuthError::Invalid(reason) => format!(
                "Bearer resource_metadata={metadata}, error=\"invalid_token\", error_description={}",
                quoted(reason)
            ),
        }
    }

    /// The `WWW-Authenticate` value of a 403.
    pub(super) fn insufficient_scope(&self, scope: Option<&str>) -> String {
        let scope = scope.map_or_else(String::new, |scope| format!(", scope={}", quoted(scope)));
        format!(
            "Bearer error=\"insufficient_scope\"{scope}, resource_metadata={}",
            quoted(&self.metadata_url)
        )
    }
}

/// `text` as a quoted-string a header can carry and RFC 6750 allows in its
/// attributes: printable ASCII without `"` and `\` (each replaced), on one
/// line, at most [`MAX_DESCRIPTION`] characters.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_DESCRIPTION) + 2);
    out.push('"');
    for (count, c) in text.chars().enumerate() {
        if count == MAX_DESCRIPTION {
            out.push_str("...");
            break;
        }
        out.push(match c {
            '"' => '\'',
            '\\' => '/',
            ' '..='~' => c,
            _ => '?',
        });
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthMethod;

    fn metadata(resource: &str) -> ResourceMetadata {
        ResourceMetadata::new(&AuthConfig {
            method: AuthMethod::Bearer(Vec::new()),
            resource: resource.into(),
            authorization_servers: vec!["https://issuer.example.com".into()],
            scopes_supported: vec!["reader".into(), "writer".into()],
            rate_limit: None,
        })
    }

    #[test]
    fn the_document_describes_the_resource() {
        assert_eq!(
            metadata("https://mcp.example.com/mcp").document(),
            json!({
                "resource": "https://mcp.example.com/mcp",
                "authorization_servers": ["https://issuer.example.com"],
                "scopes_supported": ["reader", "writer"],
                "bearer_methods_supported": ["header"],
            })
        );
    }

    #[test]
    fn it_is_served_at_the_well_known_path_and_that_plus_the_resource_path() {
        assert_eq!(
            metadata("https://mcp.example.com/mcp").paths(),
            [
                "/.well-known/oauth-protected-resource",
                "/.well-known/oauth-protected-resource/mcp"
            ]
        );
        assert_eq!(
            metadata("https://mcp.example.com/").paths(),
            ["/.well-known/oauth-protected-resource"]
        );
        assert_eq!(
            metadata("https://mcp.example.com").paths(),
            ["/.well-known/oauth-protected-resource"]
        );
        assert_eq!(
            metadata("http://127.0.0.1:8080/a/mcp?x=1").paths()[1],
            "/.well-known/oauth-protected-resource/a/mcp"
        );
    }

    #[test]
    fn challenges_point_to_the_metadata_at_the_resource_origin() {
        let m = metadata("https://mcp.example.com:8443/mcp");
        assert_eq!(
            m.challenge(&AuthError::Missing),
            "Bearer resource_metadata=\"https://mcp.example.com:8443/.well-known/oauth-protected-resource/mcp\""
        );
        assert_eq!(
            m.challenge(&AuthError::Invalid("token expired".into())),
            "Bearer resource_metadata=\"https://mcp.example.com:8443/.well-known/oauth-protected-resource/mcp\", \
             error=\"invalid_token\", error_description=\"token expired\""
        );
        assert_eq!(
            m.insufficient_scope(Some("writer")),
            "Bearer error=\"insufficient_scope\", scope=\"writer\", \
             resource_metadata=\"https://mcp.example.com:8443/.well-known/oauth-protected-resource/mcp\""
        );
        assert_eq!(
            m.insufficient_scope(None),
            "Bearer error=\"insufficient_scope\", \
             resource_metadata=\"https://mcp.example.com:8443/.well-known/oauth-protected-resource/mcp\""
        );
        assert_eq!(
            metadata("https://mcp.example.com").challenge(&AuthError::Missing),
            "Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource\""
        );
    }

    #[test]
    fn descriptions_stay_one_quoted_line_of_ascii() {
        let m = metadata("https://mcp.example.com/mcp");
        let value = m.challenge(&AuthError::Invalid("a \"b\" \\c\r\nd é".into()));
        assert!(
            value.ends_with("error_description=\"a 'b' /c??d ?\""),
            "{value}"
        );
        let long = m.challenge(&AuthError::Invalid("x".repeat(1000)));
        assert!(long.len() < 400);
        assert!(long.ends_with("...\""));
        assert!(http::HeaderValue::from_str(&long).is_ok());
    }
}
