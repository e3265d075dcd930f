//! API keys: the secret handed to a client once, and the digest kept in its place.

use base64::Engine as _;
use rand::Rng as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::config::Secret;

/// Every key imagegate issues starts with this, so a leaked one is recognisable (for
/// secret scanners) and never mistaken for a Google key.
pub const KEY_PREFIX: &str = "igk_";

/// Characters of a key shown by `keys list`, enough to tell keys apart, far too few to use.
const SHOWN_CHARS: usize = 8;

/// The SHA-256 of a key. Keys carry 256 random bits, so a fast hash is enough: nobody can
/// search for a key that matches a stolen digest.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Self(bytes))
    }

    /// Equality that takes as long whatever the inputs; digests are fixed-size, so the
    /// length of the presented token leaks nothing either.
    pub fn matches(&self, other: &KeyDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyDigest(..)")
    }
}

/// A freshly generated key: the secret (shown once) and what is stored.
pub struct GeneratedKey {
    pub token: Secret,
    pub digest: KeyDigest,
    /// The first characters of the key, for telling keys apart in listings.
    pub shown: String,
}

pub fn generate() -> GeneratedKey {
    let mut random = [0u8; 32];
    rand::rng().fill(&mut random);
    let token = format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
    );
    GeneratedKey {
        digest: KeyDigest::of(&token),
        shown: token.chars().take(SHOWN_CHARS).collect(),
        token: Secret::new(token),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_distinct_prefixed_and_match_only_their_own_digest() {
        let a = generate();
        let b = generate();
        assert!(a.token.expose().starts_with(KEY_PREFIX));
        assert_eq!(a.token.expose().len(), KEY_PREFIX.len() + 43);
        assert_ne!(a.token.expose(), b.token.expose());
        assert!(a.digest.matches(&KeyDigest::of(a.token.expose())));
        assert!(!a.digest.matches(&b.digest));
        assert_eq!(KeyDigest::from_hex(&a.digest.to_hex()), Some(a.digest));
        assert!(!format!("{:?} {:?}", a.token, a.digest).contains(a.token.expose()));
    }
}
