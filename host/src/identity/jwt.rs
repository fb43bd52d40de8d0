//! Compact JWS (RFC 7515) parsing and signature checks for the three
//! algorithms workload identity issuers use: RS256 (GitHub Actions,
//! GitLab, most Kubernetes clusters), ES256 and EdDSA (RFC 8037).
//!
//! Verified with `ring` directly (already in the tree for rustls) rather
//! than a JWT crate: the checks that matter here — the header's `alg` must
//! match the key's type, `none` and HMAC refused before any key is looked
//! at, one reason code per refusal — are the product, and each is a few
//! lines on top of ring's primitives.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::Value;

use super::reason::{Reason, Refusal};

/// Longest token accepted (GitHub's are about 1 KiB; headers are bounded
/// anyway, this keeps decoding cheap).
pub(crate) const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The signature algorithms accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alg {
    Rs256,
    Es256,
    EdDsa,
}

impl Alg {
    fn parse(alg: &str) -> Result<Alg, Refusal> {
        match alg {
            "RS256" => Ok(Alg::Rs256),
            "ES256" => Ok(Alg::Es256),
            "EdDSA" => Ok(Alg::EdDsa),
            "none" => Err(Refusal::new(
                Reason::Algorithm,
                "unsigned tokens (alg none) are refused",
            )),
            a if a.starts_with("HS") => Err(Refusal::new(
                Reason::Algorithm,
                format!(
                    "{a}: shared-secret (HMAC) tokens are refused; only RS256, ES256 and EdDSA"
                ),
            )),
            a => Err(Refusal::new(
                Reason::Algorithm,
                format!(
                    "'{}': only RS256, ES256 and EdDSA are accepted",
                    truncate(a)
                ),
            )),
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
        }
    }
}

/// A public key from a JWK, ready for ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PublicKey {
    /// Modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// P-256, uncompressed SEC1 point (0x04 || x || y).
    P256(Vec<u8>),
    /// Ed25519, 32 bytes.
    Ed25519(Vec<u8>),
}

impl PublicKey {
    /// The one algorithm this key verifies: a JWS whose header says
    /// otherwise is refused (the HS256-with-the-public-key confusion, an
    /// RSA signature presented against an EC key).
    pub(crate) fn alg(&self) -> Alg {
        match self {
            PublicKey::Rsa { .. } => Alg::Rs256,
            PublicKey::P256(_) => Alg::Es256,
            PublicKey::Ed25519(_) => Alg::EdDsa,
        }
    }

    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        use ring::signature;
        match self {
            PublicKey::Rsa { n, e } => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
            PublicKey::P256(point) => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, signature)
                    .is_ok()
            }
            PublicKey::Ed25519(key) => signature::UnparsedPublicKey::new(&signature::ED25519, key)
                .verify(message, signature)
                .is_ok(),
        }
    }
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

/// A token split and decoded, not yet trusted.
#[derive(Debug)]
pub(crate) struct Unverified {
    pub alg: Alg,
    pub kid: Option<String>,
    pub claims: Value,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

/// Whether a bearer value is shaped like a JWT (three base64url parts,
/// the first a JSON object): such values go to `[[identities]]`, anything
/// else to `[[tokens]]`.
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(h), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .is_some_and(|v| v.is_object())
}

/// Splits and decodes a compact JWS; refuses unaccepted algorithms before
/// anything else is read.
pub(crate) fn parse(token: &str) -> Result<Unverified, Refusal> {
    let malformed = |m: &str| Refusal::new(Reason::Malformed, m.to_string());
    if token.len() > MAX_TOKEN_BYTES {
        return Err(malformed("the token is longer than 16 KiB"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("a JWT has three '.'-separated parts"));
    };
    let header_bytes = URL_SAFE_NO_PAD
        .decode(h)
        .map_err(|_| malformed("the header is not base64url"))?;
    let header: RawHeader = serde_json::from_slice(&header_bytes)
        .map_err(|_| malformed("the header is not a JSON object with a string 'alg'"))?;
    let alg = Alg::parse(header.alg.as_deref().unwrap_or("none"))?;
    if header.crit.is_some() {
        return Err(malformed(
            "the header has 'crit' extensions, none of which are understood here",
        ));
    }
    let payload = URL_SAFE_NO_PAD
        .decode(p)
        .map_err(|_| malformed("the payload is not base64url"))?;
    let claims: Value =
        serde_json::from_slice(&payload).map_err(|_| malformed("the payload is not JSON"))?;
    if !claims.is_object() {
        return Err(malformed("the payload is not a JSON object"));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| malformed("the signature is not base64url"))?;
    Ok(Unverified {
        alg,
        kid: header.kid,
        claims,
        signing_input: token.as_bytes()[..h.len() + 1 + p.len()].to_vec(),
        signature,
    })
}

impl Unverified {
    /// Checks the signature with `key`, whose type must match the header.
    pub(crate) fn verify_with(&self, key: &PublicKey) -> Result<(), Refusal> {
        if key.alg() != self.alg {
            return Err(Refusal::new(
                Reason::Algorithm,
                format!(
                    "the header says {} but key '{}' is a {} key",
                    self.alg.as_str(),
                    truncate(self.kid.as_deref().unwrap_or("")),
                    key.alg().as_str()
                ),
            ));
        }
        if key.verify(&self.signing_input, &self.signature) {
            Ok(())
        } else {
            Err(Refusal::new(
                Reason::Signature,
                "the signature does not verify",
            ))
        }
    }
}

/// Values from the token quoted in messages are cut short.
pub(crate) fn truncate(s: &str) -> String {
    let cut: String = s.chars().filter(|c| !c.is_control()).take(64).collect();
    if cut.len() < s.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(v: &str) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    #[test]
    fn only_three_part_tokens_with_a_json_header_look_like_jwts() {
        assert!(looks_like_jwt(&format!(
            "{}.{}.",
            b64(r#"{"alg":"none"}"#),
            b64("{}")
        )));
        assert!(!looks_like_jwt("sg_0123abcd"));
        assert!(!looks_like_jwt("a.b.c"));
        assert!(!looks_like_jwt(&format!("{}.{}", b64("{}"), b64("{}"))));
    }

    #[test]
    fn none_and_hmac_are_refused_before_any_key() {
        for alg in ["none", "HS256", "HS512", "PS256", "RS512"] {
            let t = format!("{}.{}.", b64(&format!(r#"{{"alg":"{alg}"}}"#)), b64("{}"));
            assert_eq!(parse(&t).unwrap_err().reason, Reason::Algorithm, "{alg}");
        }
        let t = format!("{}.{}.", b64(r#"{"typ":"JWT"}"#), b64("{}"));
        assert_eq!(parse(&t).unwrap_err().reason, Reason::Algorithm);
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for t in ["", "...", "a.b.c", "eyJ.eyJ.x", &"a".repeat(20_000)] {
            assert_eq!(parse(t).unwrap_err().reason, Reason::Malformed, "{t:.20}");
        }
        let crit = format!(
            "{}.{}.",
            b64(r#"{"alg":"ES256","crit":["b64"]}"#),
            b64("{}")
        );
        assert_eq!(parse(&crit).unwrap_err().reason, Reason::Malformed);
    }
}
