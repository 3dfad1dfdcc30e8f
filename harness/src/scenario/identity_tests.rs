//! Scenario loading of identities: the `issuer` section, issuer faults
//! (`outage`, `rotate_key`), `workload.identities`, the `identity`
//! filters and `status` checks, and `{issuer.jwks_url}` in the proxy
//! section — each mistake rejected at its file, line and key.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use mcp_proxy::config::document::{Seg, Value};

use super::*;

/// A valid scenario with an issuer and two identities; tests splice one
/// mistake into it.
const BASE: &str = "\
name: t
description: a test
duration: 20s
proxy:
  backends:
    - name: a
      fake: a
      default_arguments: { jwks: '{issuer.jwks_url}' }
fakes:
  - name: a
    transport: http
    tools:
      - name: echo
issuer:
  name: idp
  audience: https://mcp.test/mcp
  keys: [k1, k2]
faults:
  - { name: rotation, issuer: idp, at: 5s, rotate_key: { to: k2, keep_old: false } }
  - { name: jwks-down, issuer: idp, at: 8s, for: 2s, outage: true }
workload:
  closed: { concurrency: 2 }
  identities:
    - name: reader
      clients: 2
      auth: { jwt: { claims: { roles: [reader] }, lifetime: 10s, renew: true } }
    - name: ci
      auth: { bearer: token-of-ci-0123456789 }
  calls:
    - tool: a/echo
expect:
  - threshold: { identity: reader, calls: a/*, error_rate: { max: 0 } }
  - status: { code: 401, identity: ci, request: tools/call, window: { during: jwks-down }, max: 0 }
  - count: { fake: idp, method: GET, min: 1 }
  - count: { fake: a, identity: ci, max: 0 }
";

fn err(text: &str) -> String {
    match load_str(text, Path::new("s.yaml")) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn with(from: &str, to: &str) -> String {
    assert_eq!(BASE.matches(from).count(), 1, "{from:?}");
    BASE.replacen(from, to, 1)
}

#[test]
fn the_base_reads_issuer_identities_faults_and_checks() {
    let s = load_str(BASE, Path::new("s.yaml")).unwrap();
    let issuer = s.issuer.as_ref().unwrap();
    assert_eq!(issuer.iss, "https://idp.test");
    assert_eq!(issuer.keys, ["k1", "k2"]);
    assert_eq!(s.workload.clients, 3);
    let ids = &s.workload.identities;
    assert_eq!(
        (ids[0].clients.clone(), ids[1].clients.clone()),
        (0..2, 2..3)
    );
    assert_eq!(
        s.workload.identity_of(2).map(|i| i.name.as_str()),
        Some("ci")
    );
    let ClientAuth::Jwt(jwt) = &ids[0].auth else {
        panic!("not a jwt")
    };
    assert_eq!((jwt.lifetime, jwt.renew), (Duration::from_secs(10), true));
    assert_eq!(
        ids[1].auth,
        ClientAuth::Bearer("token-of-ci-0123456789".into())
    );
    assert_eq!(
        s.faults[0].action,
        FaultAction::RotateKey {
            to: "k2".into(),
            keep_old: false
        }
    );
    assert_eq!(s.faults[1].fake, "idp");
    let CheckKind::Status(status) = &s.expect[1].kind else {
        panic!("not a status check")
    };
    assert_eq!(status.code, 401);
    assert_eq!(
        status.identity.as_ref().map(|i| i.clients.clone()),
        Some(2..3)
    );
    assert_eq!(
        status.window.ranges,
        [Duration::from_secs(8)..Duration::from_secs(10)]
    );
    let CheckKind::Count(count) = &s.expect[3].kind else {
        panic!("not a count")
    };
    assert_eq!(
        count.select.identity.as_ref().map(|i| i.name.as_str()),
        Some("ci")
    );
}

#[test]
fn the_jwks_url_placeholder_is_filled_in_with_the_issuers_address() {
    let s = load_str(BASE, Path::new("s.yaml")).unwrap();
    let section = s.proxy.as_ref().unwrap();
    assert_eq!(section.issuer.as_deref(), Some("idp"));
    let address = |name: &str| FakeAddress::Http {
        url: format!("http://{name}.example:9/x"),
    };
    let tree = section.config_tree(&address, SocketAddr::from(([127, 0, 0, 1], 1)), 0);
    let origins = tree
        .get(&[
            Seg::Key("backends".into()),
            Seg::Index(0),
            Seg::Key("default_arguments".into()),
            Seg::Key("jwks".into()),
        ])
        .unwrap();
    assert_eq!(origins.value, Value::Str("http://idp.example:9/x".into()));
}

#[test]
fn issuer_mistakes_are_rejected_at_their_key() {
    assert_eq!(
        err(&with("  keys: [k1, k2]", "  keys: [k1, k1]")),
        "s.yaml:17: issuer.keys[1]: is listed twice"
    );
    assert_eq!(
        err(&with("  keys: [k1, k2]", "  keys: []")),
        "s.yaml:17: issuer.keys: needs 1 to 64 key ids"
    );
    assert_eq!(
        err(&with("  name: idp", "  name: a")),
        "s.yaml:15: issuer.name: \"a\" is a fake's name; the issuer needs its own"
    );
    assert_eq!(
        err(&with(
            "  keys: [k1, k2]",
            "  keys: [k1, k2]\n  algorithm: RS256"
        )),
        "s.yaml:18: issuer.algorithm: the harness mints with EdDSA only"
    );
    let without_issuer = BASE
        .replace("issuer:\n  name: idp\n  audience: https://mcp.test/mcp\n  keys: [k1, k2]\n", "")
        .replace(
            "  - { name: rotation, issuer: idp, at: 5s, rotate_key: { to: k2, keep_old: false } }\n  - { name: jwks-down, issuer: idp, at: 8s, for: 2s, outage: true }\n",
            "  []\n",
        );
    assert_eq!(
        err(&without_issuer),
        "s.yaml:8: proxy: {issuer.jwks_url} needs an `issuer:` section"
    );
}

#[test]
fn issuer_fault_mistakes_are_rejected_at_their_key() {
    assert_eq!(
        err(&with("to: k2, keep_old: false", "to: k3, keep_old: false")),
        "s.yaml:19: faults[0].rotate_key.to: issuer \"idp\" has no key \"k3\" (keys: k1, k2)"
    );
    assert_eq!(
        err(&with("at: 5s, rotate_key", "at: 5s, for: 1s, rotate_key")),
        "s.yaml:19: faults[0].for: a key rotation happens once, at `at`, and holds to the end"
    );
    assert_eq!(
        err(&with(
            "for: 2s, outage: true",
            "for: 2s, outage: true, tool: echo"
        )),
        "s.yaml:20: faults[1].tool: an issuer fault is `outage: true` or `rotate_key` only"
    );
    assert_eq!(
        err(&with("issuer: idp, at: 8s", "issuer: nobody, at: 8s")),
        "s.yaml:20: faults[1].issuer: no issuer named \"nobody\""
    );
    assert_eq!(
        err(&with("issuer: idp, at: 8s", "fake: a, issuer: idp, at: 8s")),
        "s.yaml:20: faults[1].issuer: a fault is of a fake or of the issuer, not both"
    );
    assert_eq!(
        err(&with("issuer: idp, at: 5s", "fake: a, at: 5s")),
        "s.yaml:19: faults[0].rotate_key: rotates the issuer's keys: write `issuer: NAME`, not `fake`"
    );
}

#[test]
fn identity_mistakes_are_rejected_at_their_key() {
    assert_eq!(
        err(&with("lifetime: 10s", "lifetime: 500ms")),
        "s.yaml:26: workload.identities[0].auth.jwt.lifetime: must be at least 1s (JWT times are whole seconds)"
    );
    assert_eq!(
        err(&with("renew: true }", "renew: true, key: k9 }")),
        "s.yaml:26: workload.identities[0].auth.jwt.key: issuer \"idp\" has no key \"k9\""
    );
    assert_eq!(
        err(&with(
            "bearer: token-of-ci-0123456789",
            "bearer: 'two words'"
        )),
        "s.yaml:28: workload.identities[1].auth.bearer: must be non-empty visible ASCII (it is sent in a header)"
    );
    assert_eq!(
        err(&with("    - name: ci\n", "    - name: reader\n")),
        "s.yaml:27: workload.identities[1].name: is used twice"
    );
    assert_eq!(
        err(&with(
            "  closed: { concurrency: 2 }",
            "  closed: { concurrency: 2 }\n  clients: 5"
        )),
        "s.yaml:23: workload.clients: the identities have 3 clients in all; leave `clients` out or make it 3"
    );
    assert!(
        err(&with("{ bearer: token-of-ci-0123456789 }", "{ }"))
            .ends_with("workload.identities[1].auth: needs bearer or jwt")
    );
}

#[test]
fn check_mistakes_are_rejected_at_their_key() {
    assert_eq!(
        err(&with("identity: reader, calls", "identity: nobody, calls")),
        "s.yaml:32: expect[0].threshold.identity: no identity named \"nobody\" in workload.identities"
    );
    assert_eq!(
        err(&with("code: 401, identity: ci", "code: 99, identity: ci")),
        "s.yaml:33: expect[1].status.code: must be an HTTP status, 100 to 599"
    );
    assert_eq!(
        err(&with(", window: { during: jwks-down }, max: 0 }", " }")),
        "s.yaml:33: expect[1].status: needs min or max"
    );
    assert_eq!(
        err(&with("fake: idp, method: GET", "fake: idq, method: GET")),
        "s.yaml:34: expect[2].count.fake: no fake named \"idq\""
    );
}
