//! `Origin` validation against DNS rebinding.
//!
//! A browser page on a foreign site must not drive a proxy that listens on
//! localhost. Requests without an `Origin` header (non-browser clients) pass;
//! localhost origins pass; anything else must be listed in
//! `proxy.allowed_origins`.

/// Whether a request with this `Origin` header value may proceed.
pub(crate) fn is_allowed(origin: &str, allowed: &[String]) -> bool {
    if allowed.iter().any(|entry| entry == origin) {
        return true;
    }
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let host = if let Some(bracketed) = rest.strip_prefix('[') {
        match bracketed.split_once(']') {
            Some((host, port)) if port.is_empty() || is_port(port) => host,
            _ => return false,
        }
    } else {
        match rest.split_once(':') {
            Some((host, port)) if is_port(port) => host,
            Some(_) => return false,
            None => rest,
        }
    };
    matches!(host, "localhost" | "127.0.0.1" | "::1")
}

fn is_port(text: &str) -> bool {
    text.strip_prefix(':')
        .unwrap_or(text)
        .parse::<u16>()
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_origins_pass_and_foreign_ones_do_not() {
        for origin in [
            "http://localhost",
            "http://localhost:3000",
            "https://127.0.0.1:8443",
            "http://[::1]:80",
            "http://[::1]",
        ] {
            assert!(is_allowed(origin, &[]), "{origin}");
        }
        for origin in [
            "http://evil.example",
            "http://localhost.evil.example",
            "http://127.0.0.1.nip.io",
            "null",
            "file://",
            "http://localhost:x",
            "http://[::2]:80",
        ] {
            assert!(!is_allowed(origin, &[]), "{origin}");
        }
        assert!(is_allowed(
            "https://app.example.com",
            &["https://app.example.com".to_owned()]
        ));
    }
}
