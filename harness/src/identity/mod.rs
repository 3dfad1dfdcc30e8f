//! Identities: who the load's clients are to an authenticating proxy.
//!
//! A scenario's `issuer:` is a token issuer the harness plays: its keys
//! (Ed25519, derived from the run's seed, so a simulation replays) and
//! which of them are published and signing at each moment ([`keys`]), a
//! fake JWKS server the proxy fetches them from ([`jwks`]), and the JWTs the
//! clients of an identity send ([`token`]), minted with the claims the
//! scenario gives and renewed or not as it says.
//!
//! Time: a token's `iat`/`exp` are read from a wall clock — the operating
//! system's in a real run, [`crate::clock::SimWallClock`] in simulation
//! (the same clock the simulated proxy judges them by); which key signs,
//! and which are published, follows scenario time (`rotate_key` faults).

pub mod jwks;
pub mod keys;
pub mod token;

pub use jwks::{JWKS_PATH, JwksServer};
pub use keys::IssuerKeys;
pub use token::{Callers, Credentials};
