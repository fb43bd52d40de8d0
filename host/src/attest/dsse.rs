//! Dead Simple Signing Envelope (DSSE v1): a payload, its type and
//! signatures over the pre-authentication encoding of both, so that a
//! signature over one payload type can never be replayed as another.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use super::AttestError;

/// A DSSE envelope as JSON carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Base64 of the payload bytes.
    pub payload: String,
    pub payload_type: String,
    pub signatures: Vec<Signature>,
}

/// One signature: base64 `sig`, and the `keyid` hint of its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    #[serde(default)]
    pub keyid: String,
    pub sig: String,
}

/// `DSSEv1 <len(type)> <type> <len(body)> <body>`, lengths in ASCII decimal.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// Base64 in either alphabet, padded or not: DSSE allows both, and
/// producers differ.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .or_else(|_| URL_SAFE_NO_PAD.decode(text))
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
        .ok()
}

impl Envelope {
    /// Parses an envelope from JSON text.
    pub fn parse(text: &str) -> Result<Self, AttestError> {
        let env: Envelope = super::json_at_path(text.as_bytes())
            .map_err(|e| AttestError::Envelope(e.to_string()))?;
        if env.signatures.is_empty() {
            return Err(AttestError::Envelope("`signatures` is empty".into()));
        }
        Ok(env)
    }

    /// The payload bytes.
    pub fn payload_bytes(&self) -> Result<Vec<u8>, AttestError> {
        decode_base64(&self.payload)
            .ok_or_else(|| AttestError::Envelope("`payload` is not base64".into()))
    }

    /// The bytes every signature signs.
    pub fn pae(&self) -> Result<Vec<u8>, AttestError> {
        Ok(pae(&self.payload_type, &self.payload_bytes()?))
    }

    /// An envelope over `payload`, signed by `signer` as `keyid`.
    pub fn sign_ed25519(
        payload_type: &str,
        payload: &[u8],
        keyid: &str,
        signer: &ed25519_dalek::SigningKey,
    ) -> Self {
        use ed25519_dalek::Signer;
        let sig = signer.sign(&pae(payload_type, payload));
        Envelope {
            payload: STANDARD.encode(payload),
            payload_type: payload_type.to_string(),
            signatures: vec![Signature {
                keyid: keyid.to_string(),
                sig: STANDARD.encode(sig.to_bytes()),
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_specification_example() {
        // From the DSSE protocol description.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn an_envelope_without_signatures_is_refused() {
        let e = Envelope::parse(r#"{"payload":"","payloadType":"x","signatures":[]}"#).unwrap_err();
        assert!(e.to_string().contains("signatures"), "{e}");
    }

    #[test]
    fn both_base64_alphabets_are_read() {
        assert_eq!(decode_base64("-_8=").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode_base64("+/8=").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode_base64("+/8").unwrap(), vec![0xfb, 0xff]);
    }
}
