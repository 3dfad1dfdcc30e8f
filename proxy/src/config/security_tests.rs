//! Loader tests of the identity and security sections (`auth`,
//! `authorization`, `audit`, `admin`, `allow_unauthenticated`,
//! `forward_auth`, `inherit_env`) and of the secrets a config collects:
//! defaults, every rule's message, line and path, and `*_file`s read from
//! the config's folder.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

const BASE: &str = "/etc/mcp";
const READER: &str = "reader-token-0123456789";
const WRITER: &str = "writer-token-0123456789";

fn env(name: &str) -> Option<String> {
    match name {
        "READER_TOKEN" => Some(READER.into()),
        "WRITER_TOKEN" => Some(WRITER.into()),
        "SHORT" => Some("short".into()),
        "HMAC" => Some("an-hmac-secret-of-some-length".into()),
        "ADMIN" => Some("admin-token-0123456789".into()),
        _ => None,
    }
}

const BACKENDS: &str = "backends:\n  - name: a\n    transport: stdio\n    command: srv\n";

fn yaml_in(text: &str, base: &Path) -> Result<Config, ConfigError> {
    load_str(text, Format::Yaml, "proxy.yaml", base, &env)
}

/// `text` followed by one stdio backend, loaded from [`BASE`].
fn load(text: &str) -> Result<Config, ConfigError> {
    yaml_in(&format!("{text}{BACKENDS}"), Path::new(BASE))
}

fn err(text: &str) -> String {
    load(text).expect_err("should be rejected").to_string()
}

/// Each config (followed by one backend) is rejected with exactly its message.
fn assert_rejects(cases: &[(impl AsRef<str>, &str)]) {
    for (text, expected) in cases {
        let text = text.as_ref();
        assert_eq!(&err(text), expected, "{text}");
    }
}

/// A fresh folder for `*_file` tests.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-proxy-config-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const BEARER: &str = "auth:
  resource: https://mcp.example.com/mcp
  bearer:
    tokens:
      - token: ${READER_TOKEN}
        subject: ci-bot
        scopes: [reader]
      - token: ${WRITER_TOKEN}
        scopes: [writer]
authorization:
  roles:
    reader:
      - allow: { backend: search, tools: [\"find_*\", get] }
      - deny: { tools: [\"*delete*\"] }
    writer:
      - allow: { backend: \"*\" }
";

// ------------------------------------------------------------- success ----

#[test]
fn no_security_sections_by_default() {
    let config = load("").unwrap();
    assert_eq!(config.auth, None);
    assert_eq!(config.authorization, None);
    assert_eq!(config.audit, None);
    assert_eq!(config.admin, AdminSettings::default());
    assert!(!config.proxy.allow_unauthenticated);
    assert_eq!(config.secrets, Secrets::default());
}

#[test]
fn bearer_auth_and_authorization() {
    let config = load(BEARER).unwrap();
    let auth = config.auth.unwrap();
    assert_eq!(auth.resource, "https://mcp.example.com/mcp");
    assert_eq!(auth.scopes_supported, ["reader", "writer"]);
    assert_eq!(auth.rate_limit, None);
    assert_eq!(
        auth.method,
        AuthMethod::Bearer(vec![
            BearerToken {
                token: READER.into(),
                subject: "ci-bot".into(),
                scopes: vec!["reader".into()],
            },
            BearerToken {
                token: WRITER.into(),
                subject: "token-2".into(),
                scopes: vec!["writer".into()],
            },
        ])
    );
    let authorization = config.authorization.unwrap();
    assert_eq!(authorization.default, Access::Deny);
    assert_eq!(
        authorization.roles["reader"],
        [
            AccessRule {
                access: Access::Allow,
                backend: "search".into(),
                tools: Some(vec!["find_*".into(), "get".into()]),
                resources: None,
                prompts: None,
            },
            AccessRule {
                access: Access::Deny,
                backend: "*".into(),
                tools: Some(vec!["*delete*".into()]),
                resources: None,
                prompts: None,
            },
        ]
    );
    assert_eq!(config.secrets, Secrets(vec![READER.into(), WRITER.into()]));
}

#[test]
fn jwt_defaults() {
    let config = load(
        "auth:\n  resource: https://mcp.example.com/mcp\n  jwt:\n    jwks_url: http://127.0.0.1:9000/jwks.json\n",
    )
    .unwrap();
    let AuthMethod::Jwt(jwt) = config.auth.unwrap().method else {
        panic!("not jwt")
    };
    assert_eq!(
        *jwt,
        JwtAuth {
            issuer: None,
            audiences: vec!["https://mcp.example.com/mcp".into()],
            algorithms: vec!["RS256".into(), "ES256".into()],
            leeway: Duration::from_secs(60),
            keys: JwtKeys {
                jwks_url: Some("http://127.0.0.1:9000/jwks.json".into()),
                jwks_ttl: Duration::from_secs(300),
                jwks_min_refetch: Duration::from_secs(10),
                static_keys: vec![],
                secret: None,
            },
            roles_claim: "scope".into(),
            subject_claim: "sub".into(),
        }
    );
}

#[test]
fn jwt_with_every_key_source() {
    let dir = temp_dir("jwt");
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    let pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n";
    std::fs::write(dir.join("keys/issuer.pem"), pem).unwrap();
    std::fs::write(dir.join("hmac.secret"), "  file-secret-value \n").unwrap();
    let text = format!(
        "auth:
  resource: https://mcp.example.com/mcp
  rate_limit: {{ requests: 5, per: 1s }}
  jwt:
    issuer: https://issuer.example.com
    audiences: [api]
    algorithms: [EdDSA, HS256]
    leeway: 5s
    keys:
      - pem_file: keys/issuer.pem
        kid: k1
      - jwk: {{ kty: OKP, crv: Ed25519, x: abc, kid: k2 }}
    secret_file: hmac.secret
    roles_claim: roles
    subject_claim: email
{BACKENDS}"
    );
    let config = yaml_in(&text, &dir).unwrap();
    let auth = config.auth.unwrap();
    assert_eq!(
        auth.rate_limit,
        Some(RateLimit {
            requests: 5,
            per: Duration::from_secs(1)
        })
    );
    let AuthMethod::Jwt(jwt) = auth.method else {
        panic!("not jwt")
    };
    assert_eq!(jwt.issuer.as_deref(), Some("https://issuer.example.com"));
    assert_eq!(jwt.audiences, ["api"]);
    assert_eq!(jwt.algorithms, ["EdDSA", "HS256"]);
    assert_eq!(jwt.leeway, Duration::from_secs(5));
    assert_eq!(jwt.keys.secret.as_deref(), Some("file-secret-value"));
    assert_eq!(
        jwt.keys.static_keys,
        [
            StaticKey::Pem {
                pem: pem.into(),
                kid: Some("k1".into())
            },
            StaticKey::Jwk(
                serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "abc", "kid": "k2"})
            ),
        ]
    );
    assert_eq!(
        (jwt.roles_claim.as_str(), jwt.subject_claim.as_str()),
        ("roles", "email")
    );
    // A secret read from a file is a secret; a public key is not.
    assert_eq!(config.secrets, Secrets(vec!["file-secret-value".into()]));
}

#[test]
fn token_files_are_read_from_the_config_folder_and_trimmed() {
    let dir = temp_dir("tokens");
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    std::fs::write(
        dir.join("secrets/writer.token"),
        "\n  file-token-0123456789\n",
    )
    .unwrap();
    std::fs::write(dir.join("admin.token"), "admin-file-token-0123\n").unwrap();
    let text = format!(
        "auth:
  resource: https://mcp.example.com/mcp
  bearer:
    tokens:
      - token_file: secrets/writer.token
admin:
  listen: 0.0.0.0:9091
  token_file: admin.token
{BACKENDS}"
    );
    let config = yaml_in(&text, &dir).unwrap();
    let AuthMethod::Bearer(tokens) = config.auth.unwrap().method else {
        panic!("not bearer")
    };
    assert_eq!(tokens[0].token, "file-token-0123456789");
    assert_eq!(tokens[0].subject, "token-1");
    assert_eq!(config.admin.token.as_deref(), Some("admin-file-token-0123"));
    assert_eq!(
        config.secrets,
        Secrets(vec![
            "file-token-0123456789".into(),
            "admin-file-token-0123".into()
        ])
    );

    let missing = yaml_in(
        &format!(
            "auth:\n  resource: https://a.example/mcp\n  bearer:\n    tokens:\n      - token_file: nope.token\n{BACKENDS}"
        ),
        &dir,
    )
    .unwrap_err()
    .to_string();
    assert!(
        missing.starts_with("proxy.yaml:5: auth.bearer.tokens[0].token_file: cannot read "),
        "{missing}"
    );
}

#[test]
fn audit_admin_and_the_open_door() {
    let config = load(
        "proxy:\n  listen: 0.0.0.0:8080\n  allow_unauthenticated: true\naudit:\n  to: logs/audit.jsonl\n  include_arguments: true\n  queue: 5\nadmin:\n  listen: 127.0.0.1:9091\n  token: ${ADMIN}\n",
    )
    .unwrap();
    assert!(config.proxy.allow_unauthenticated);
    assert_eq!(
        config.audit,
        Some(AuditConfig {
            to: AuditTarget::File(Path::new(BASE).join("logs/audit.jsonl")),
            include_arguments: true,
            queue: 5,
        })
    );
    assert_eq!(
        config.admin,
        AdminSettings {
            listen: Some("127.0.0.1:9091".parse().unwrap()),
            token: Some("admin-token-0123456789".into()),
        }
    );
    assert_eq!(
        load("audit:\n").unwrap().audit,
        Some(AuditConfig {
            to: AuditTarget::Stdout,
            include_arguments: false,
            queue: 10_000,
        })
    );
    // A loopback or IPv6-loopback listen needs no auth.
    assert!(load("proxy:\n  listen: \"[::1]:8080\"\n").is_ok());
}

#[test]
fn forward_auth_and_inherit_env() {
    let config = load_str(
        "backends:\n  - name: a\n    transport: stdio\n    command: srv\n    inherit_env: true\n  - name: b\n    transport: http\n    url: http://127.0.0.1:9001/mcp\n    forward_auth: true\n",
        Format::Yaml,
        "proxy.yaml",
        Path::new(BASE),
        &env,
    )
    .unwrap();
    assert!(matches!(
        config.backends[0].endpoints[0],
        TransportConfig::Stdio {
            inherit_env: true,
            ..
        }
    ));
    assert!(!config.backends[0].forward_auth);
    assert!(config.backends[1].forward_auth);
}

// --------------------------------------------------------------- errors ----

#[test]
fn a_non_loopback_listen_needs_auth_or_the_explicit_opt_out() {
    let e = err("proxy:\n  listen: 0.0.0.0:8080\n");
    assert!(
        e.starts_with("proxy.yaml:2: proxy.listen: 0.0.0.0:8080 is reachable from other hosts"),
        "{e}"
    );
    assert!(e.contains("add \"auth:\""), "{e}");
    assert!(e.contains("\"proxy.allow_unauthenticated: true\""), "{e}");
    assert!(load(&format!("proxy:\n  listen: 0.0.0.0:8080\n{BEARER}")).is_ok());
}

#[test]
fn auth_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "auth:\n  bearer: { tokens: [{ token: \"${READER_TOKEN}\" }] }\n",
            "proxy.yaml:2: auth: missing key \"resource\": the public URL of the MCP endpoint as clients reach it, e.g. https://mcp.example.com/mcp",
        ),
        (
            "auth:\n  resource: /mcp\n  bearer: { tokens: [{ token: \"${READER_TOKEN}\" }] }\n",
            "proxy.yaml:2: auth.resource: URL must start with http:// or https://",
        ),
        (
            "auth:\n  resource: https://a.example/mcp\n",
            "proxy.yaml:2: auth: one of \"bearer\" (static tokens) or \"jwt\" (signed tokens) is required",
        ),
        (
            "auth:\n  resource: https://a.example/mcp\n  bearer: { tokens: [{ token: \"${READER_TOKEN}\" }] }\n  jwt: { jwks_url: https://a.example/jwks }\n",
            "proxy.yaml:4: auth: \"bearer\" and \"jwt\" are exclusive: keep one",
        ),
        (
            "auth:\n  resource: https://a.example/mcp\n  bearer:\n    tokens:\n      - token: ${SHORT}\n",
            "proxy.yaml:5: auth.bearer.tokens[0].token: a token must be at least 16 bytes (this one has 5)",
        ),
        (
            "auth:\n  resource: https://a.example/mcp\n  bearer:\n    tokens:\n      - token: ${READER_TOKEN}\n      - token: ${READER_TOKEN}\n",
            "proxy.yaml:6: auth.bearer.tokens[1].token: the same token as tokens[0]: each caller needs its own",
        ),
        (
            "auth:\n  resource: https://a.example/mcp\n  bearer:\n    tokens:\n      - token: ${READER_TOKEN}\n        token_file: x\n",
            "proxy.yaml:6: auth.bearer.tokens[0]: give \"token\" or \"token_file\", not both",
        ),
        (
            "auth:\n  resource: https://a.example/mcp\n  bearer:\n    tokens:\n      - subject: me\n",
            "proxy.yaml:5: auth.bearer.tokens[0]: missing key \"token\" (or \"token_file\")",
        ),
        (
            "auth:\n  resource: https://a.example/mcp\n  bearer:\n    tokens: []\n",
            "proxy.yaml:4: auth.bearer.tokens: at least one token is required",
        ),
        (
            "auth:\n  resource: https://a.example/mcp\n  bearer:\n    tokens:\n      - { token: \"${READER_TOKEN}\", scopes: [raeder] }\nauthorization:\n  roles:\n    reader: []\n",
            "proxy.yaml:5: auth.bearer.tokens[0].scopes[0]: unknown role \"raeder\": authorization.roles defines reader",
        ),
        (
            "auth:\n  resource: https://a.example/mcp\n  bearer:\n    tokns: []\n",
            "proxy.yaml:4: auth.bearer: unknown key \"tokns\"",
        ),
        (
            "auth:\n  resource: https://a.example/mcp\n  rate_limit: { requests: 0, per: 1s }\n  jwt: { jwks_url: https://a.example/jwks }\n",
            "proxy.yaml:3: auth.rate_limit.requests: must be at least 1",
        ),
    ];
    assert_rejects(cases);
    // Without `authorization:`, scopes are not checked against roles.
    assert!(
        load("auth:\n  resource: https://a.example/mcp\n  bearer:\n    tokens:\n      - { token: \"${READER_TOKEN}\", scopes: [anything] }\n")
            .is_ok()
    );
}

#[test]
fn jwt_errors() {
    let jwt = |body: &str| format!("auth:\n  resource: https://a.example/mcp\n  jwt:\n{body}");
    let cases: &[(String, &str)] = &[
        (
            jwt("    issuer: https://a.example\n"),
            "proxy.yaml:4: auth.jwt: no verification key: set \"jwks_url\", \"keys\" or \"secret\"",
        ),
        (
            jwt("    jwks_url: https://a.example/jwks\n    algorithms: [RS256, none]\n"),
            "proxy.yaml:5: auth.jwt.algorithms[1]: \"none\" is never allowed: an unsigned token proves nothing, anyone can write one",
        ),
        (
            jwt("    jwks_url: https://a.example/jwks\n    algorithms: [RS257]\n"),
            "proxy.yaml:5: auth.jwt.algorithms[0]: unknown algorithm \"RS257\"; expected one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA, HS256, HS384, HS512",
        ),
        (
            jwt("    jwks_url: https://a.example/jwks\n    algorithms: [RS256, HS256]\n"),
            "proxy.yaml:5: auth.jwt.algorithms[1]: HS256 is verified with a shared secret: set \"secret\" (or \"secret_file\")",
        ),
        (
            jwt("    secret: ${HMAC}\n"),
            "proxy.yaml:4: auth.jwt: a secret is used by HS256, HS384 and HS512 only, and none of them is in \"algorithms\"",
        ),
        (
            jwt("    jwks_url: https://a.example/jwks\n    algorithms: []\n"),
            "proxy.yaml:5: auth.jwt.algorithms: must name at least one algorithm",
        ),
        (
            jwt("    keys:\n      - { pem: \"x\", jwk: { kty: RSA } }\n"),
            "proxy.yaml:5: auth.jwt.keys[0]: give one of pem, jwk, not several",
        ),
        (
            jwt("    keys:\n      - { kid: k1 }\n"),
            "proxy.yaml:5: auth.jwt.keys[0]: one of \"pem_file\", \"pem\" or \"jwk\" is required",
        ),
        (
            jwt("    keys:\n      - pem: \"not a key\"\n"),
            "proxy.yaml:5: auth.jwt.keys[0].pem: not a PEM key (no \"-----BEGIN ...-----\" line)",
        ),
        (
            jwt("    keys:\n      - pem: \"-----BEGIN PRIVATE KEY-----\"\n"),
            "proxy.yaml:5: auth.jwt.keys[0].pem: this PEM holds a private key: give the public key only",
        ),
        (
            jwt("    keys:\n      - jwk: { kty: OKP, d: secret }\n"),
            "proxy.yaml:5: auth.jwt.keys[0].jwk: this JWK holds a private key (\"d\"): give the public key only",
        ),
        (
            jwt("    keys:\n      - jwk: { kty: oct, k: abc }\n"),
            "proxy.yaml:5: auth.jwt.keys[0].jwk: a symmetric key (kty \"oct\") belongs in \"secret\", with an HS algorithm",
        ),
        (
            jwt("    jwks_url: https://a.example/jwks\n    audiences: []\n"),
            "proxy.yaml:5: auth.jwt.audiences: must name at least one audience (leave it out for auth.resource)",
        ),
        (
            jwt("    jwks_url: https://a.example/jwks\n    jwks_ttl: 0s\n"),
            "proxy.yaml:5: auth.jwt.jwks_ttl: must be greater than zero",
        ),
    ];
    assert_rejects(cases);
    assert!(load(&jwt("    secret: ${HMAC}\n    algorithms: [HS256]\n")).is_ok());
}

#[test]
fn authorization_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "authorization:\n  default: maybe\n",
            "proxy.yaml:2: authorization.default: expected \"allow\" or \"deny\", found \"maybe\"",
        ),
        (
            "authorization:\n  roles:\n    reader:\n      - allow: { tools: [a] }\n        deny: { tools: [b] }\n",
            "proxy.yaml:5: authorization.roles.reader[0]: a rule is \"allow\" or \"deny\", not both: write two rules",
        ),
        (
            "authorization:\n  roles:\n    reader:\n      - {}\n",
            "proxy.yaml:4: authorization.roles.reader[0]: a rule needs \"allow\" or \"deny\"",
        ),
        (
            "authorization:\n  roles:\n    reader:\n      - allow: { tool: [a] }\n",
            "proxy.yaml:4: authorization.roles.reader[0].allow: unknown key \"tool\"",
        ),
        (
            "authorization:\n  roles:\n    reader:\n      - allow: { tools: [\"\"] }\n",
            "proxy.yaml:4: authorization.roles.reader[0].allow.tools[0]: must not be empty",
        ),
    ];
    assert_rejects(cases);
    assert_eq!(
        load("authorization:\n  default: allow\n")
            .unwrap()
            .authorization
            .unwrap()
            .default,
        Access::Allow
    );
}

#[test]
fn audit_admin_and_transport_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "audit:\n  queue: 0\n",
            "proxy.yaml:2: audit.queue: must be at least 1",
        ),
        (
            "audit:\n  to: \"\"\n",
            "proxy.yaml:2: audit.to: must not be empty",
        ),
        (
            "admin:\n  listen: 0.0.0.0:9091\n",
            "proxy.yaml:2: admin.listen: 0.0.0.0:9091 is reachable from other hosts: set \"admin.token\" (or \"admin.token_file\") so /admin/* asks for it, or listen on a loopback address such as 127.0.0.1",
        ),
        (
            "admin:\n  token: ${ADMIN}\n  token_file: x\n",
            "proxy.yaml:3: admin: give \"token\" or \"token_file\", not both",
        ),
    ];
    assert_rejects(cases);
    let backend = |text: &str| {
        load_str(text, Format::Yaml, "proxy.yaml", Path::new(BASE), &env)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        backend(
            "backends:\n  - name: a\n    transport: stdio\n    command: srv\n    forward_auth: true\n"
        ),
        "proxy.yaml:5: backends[0]: key \"forward_auth\" is not valid for transport \"stdio\""
    );
    assert_eq!(
        backend(
            "backends:\n  - name: a\n    transport: http\n    url: http://127.0.0.1:1/mcp\n    inherit_env: true\n"
        ),
        "proxy.yaml:5: backends[0]: key \"inherit_env\" is not valid for transport \"http\""
    );
}

// -------------------------------------------------------------- secrets ----

#[test]
fn expanded_values_are_secrets_and_redacted() {
    let config = load_str(
        "backends:\n  - name: a\n    transport: stdio\n    command: srv\n    args: [\"--key\", \"${KEY}\"]\n",
        Format::Yaml,
        "proxy.yaml",
        Path::new(BASE),
        &|name| (name == "KEY").then(|| "s3cr3t-value-123".to_owned()),
    )
    .unwrap();
    assert_eq!(config.secrets, Secrets(vec!["s3cr3t-value-123".into()]));
    assert_eq!(
        config.secrets.redact("srv --key s3cr3t-value-123"),
        "srv --key [redacted]"
    );
}
