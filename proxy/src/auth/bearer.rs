//! Static bearer tokens (`auth.bearer.tokens`).
//!
//! A token is compared by its SHA-256 digest, in constant time, against
//! every configured token: the time an answer takes says neither how much
//! of a guess was right (no early exit on the first differing byte, and
//! digests make every comparison the same length) nor which token matched
//! (all are checked, the match is selected without a branch).

use aws_lc_rs::digest;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use super::{AuthError, Caller};
use crate::config::BearerToken;

/// The configured tokens, as digests.
pub(super) struct BearerTokens {
    entries: Vec<Entry>,
}

struct Entry {
    digest: [u8; 32],
    caller: Caller,
}

impl BearerTokens {
    /// From `bearer.tokens`.
    pub(super) fn new(tokens: &[BearerToken]) -> Self {
        Self {
            entries: tokens
                .iter()
                .map(|token| Entry {
                    digest: sha256(&token.token),
                    caller: Caller::new(token.subject.clone(), token.scopes.clone()),
                })
                .collect(),
        }
    }

    /// The caller `token` belongs to.
    pub(super) fn check(&self, token: &str) -> Result<Caller, AuthError> {
        let presented = sha256(token);
        let mut found = Choice::from(0);
        let mut index = 0u32;
        for (position, entry) in self.entries.iter().enumerate() {
            let equal = presented.ct_eq(&entry.digest);
            // Positions fit: a config has far fewer than 2^32 tokens.
            let position = u32::try_from(position).unwrap_or(u32::MAX);
            index.conditional_assign(&position, equal);
            found |= equal;
        }
        if bool::from(found) {
            self.entries
                .get(index as usize)
                .map(|entry| entry.caller.clone())
                .ok_or_else(|| AuthError::invalid("unknown token"))
        } else {
            Err(AuthError::invalid("unknown token"))
        }
    }
}

/// Whether a presented secret equals the expected one (`admin.token`), by
/// their digests in constant time: neither where they differ nor the
/// expected one's length shows in the time taken.
pub(crate) fn same_secret(presented: &str, expected: &str) -> bool {
    sha256(presented).ct_eq(&sha256(expected)).into()
}

fn sha256(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, text.as_bytes()).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(token: &str, subject: &str, scopes: &[&str]) -> BearerToken {
        BearerToken {
            token: token.into(),
            subject: subject.into(),
            scopes: scopes.iter().map(|s| (*s).into()).collect(),
        }
    }

    #[test]
    fn each_token_proves_its_own_subject_and_scopes() {
        let tokens = BearerTokens::new(&[
            token("reader-token-0123456789", "ci-bot", &["reader"]),
            token("writer-token-0123456789", "token-2", &["writer", "reader"]),
        ]);
        assert_eq!(
            tokens.check("reader-token-0123456789"),
            Ok(Caller {
                subject: "ci-bot".into(),
                roles: vec!["reader".into()]
            })
        );
        assert_eq!(
            tokens.check("writer-token-0123456789").map(|c| c.subject),
            Ok("token-2".into())
        );
        for wrong in [
            "reader-token-012345678",
            "reader-token-01234567890",
            "Reader-token-0123456789",
            "",
        ] {
            assert_eq!(
                tokens.check(wrong),
                Err(AuthError::Invalid("unknown token".into()))
            );
        }
        assert!(BearerTokens::new(&[]).check("anything").is_err());
    }
}
