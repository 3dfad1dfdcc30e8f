//! The syntax of an `Authorization` header carrying a bearer token (RFC
//! 6750 §2.1): `Bearer`, in any case, one space, then a token68. Both
//! methods read their token through here, so a malformed header is refused
//! the same way whatever checks the token, and before any of them sees it.

use super::AuthError;

/// The longest token looked at: a JWT with a few claims is well under 2 KiB;
/// anything past this is refused before it is parsed or hashed.
pub(super) const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The token of a `Bearer` `Authorization` header value.
pub(super) fn bearer_token(header: Option<&str>) -> Result<&str, AuthError> {
    let Some(header) = header else {
        return Err(AuthError::Missing);
    };
    let Some((scheme, token)) = header.split_once(' ') else {
        return Err(if header.eq_ignore_ascii_case("bearer") {
            AuthError::invalid("Bearer credential has no token")
        } else if header.trim().is_empty() {
            AuthError::invalid("empty Authorization header")
        } else {
            AuthError::invalid("Authorization header is not `Bearer <token>`")
        });
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::invalid(format!(
            "authorization scheme {} is not Bearer",
            printable(scheme)
        )));
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::invalid(format!(
            "token longer than {MAX_TOKEN_BYTES} bytes"
        )));
    }
    if token.is_empty() {
        return Err(AuthError::invalid("Bearer credential has no token"));
    }
    if !is_token68(token) {
        return Err(AuthError::invalid(
            "malformed Bearer token (one space after `Bearer`, then only \
             letters, digits and -._~+/ with trailing =)",
        ));
    }
    Ok(token)
}

/// `token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`
fn is_token68(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// A client's scheme name, for a reason: shown only when it looks like a
/// scheme name (a short word), so a token sent without a scheme is not
/// echoed into logs.
fn printable(scheme: &str) -> &str {
    if scheme.len() <= 20
        && !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        scheme
    } else {
        "(not a word)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(header: &str) -> String {
        match bearer_token(Some(header)) {
            Err(AuthError::Invalid(reason)) => reason,
            other => panic!("{header:?} gave {other:?}"),
        }
    }

    #[test]
    fn the_scheme_is_any_case_and_one_space_precedes_a_token68() {
        assert_eq!(
            bearer_token(Some("Bearer abc.DEF-_~+/==")),
            Ok("abc.DEF-_~+/==")
        );
        assert_eq!(bearer_token(Some("bearer abc")), Ok("abc"));
        assert_eq!(bearer_token(Some("BEARER abc")), Ok("abc"));
        assert_eq!(bearer_token(None), Err(AuthError::Missing));
    }

    #[test]
    fn anything_else_is_invalid_with_a_reason() {
        for (header, why) in [
            ("Basic dXNlcjpwYXNz", "scheme Basic is not Bearer"),
            ("Bearer", "no token"),
            ("Bearer ", "no token"),
            ("", "empty"),
            ("abc", "not `Bearer <token>`"),
            ("Bearer  abc", "malformed"),
            ("Bearer abc def", "malformed"),
            ("Bearer abc\t", "malformed"),
            ("Bearer ===", "malformed"),
            ("Bearer a=b", "malformed"),
            ("Bearer \"abc\"", "malformed"),
            ("Bearer é", "malformed"),
        ] {
            assert!(reason(header).contains(why), "{header:?}");
        }
        let huge = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
        assert!(reason(&huge).contains("longer than"));
        assert_eq!(
            bearer_token(Some(&format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES)))).map(str::len),
            Ok(MAX_TOKEN_BYTES)
        );
        // A reason never echoes what is not a scheme name.
        assert!(!reason(&format!("{} x", "S".repeat(21))).contains("SSS"));
        assert!(!reason("s3cr3t/t0ken x").contains("s3cr3t"));
    }
}
