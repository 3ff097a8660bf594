//! The webhook signature, as the Standard Webhooks specification defines it
//! (<https://www.standardwebhooks.com/>, "Signature scheme"):
//!
//! - the secret is `whsec_` followed by the base64 (standard alphabet, padded) of the key, 24
//!   to 64 random bytes; the key is the decoded bytes (the prefix may be left off);
//! - the signed content is `{webhook-id}.{webhook-timestamp}.{body}`: the two headers' values as
//!   sent and the raw request body;
//! - `webhook-signature` is `v1,` followed by the base64 of HMAC-SHA256(key, content). The
//!   header may carry several space-separated signatures (during a secret's rotation); one
//!   valid `v1` signature is enough.
//!
//! [`verify`] is the receiver's side. The timestamp is signed, so a receiver can refuse old
//! deliveries (replays): the specification suggests a tolerance of 5 minutes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac as _};
use secrecy::{ExposeSecret as _, SecretSlice};
use sha2::Sha256;

/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Shortest key accepted, in bytes (the specification's lower bound).
pub const MIN_KEY_BYTES: usize = 24;
/// Longest key accepted, in bytes (the specification's upper bound).
pub const MAX_KEY_BYTES: usize = 64;
/// The version tag of an HMAC-SHA256 signature in `webhook-signature`.
const VERSION: &str = "v1";

type HmacSha256 = Hmac<Sha256>;

/// A signing key, decoded from `whsec_<base64>`. Never printed (`Debug` shows `[REDACTED]`).
#[derive(Debug, Clone)]
pub struct WebhookSecret {
    key: SecretSlice<u8>,
}

/// Why a secret was refused. The messages never contain the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// What follows `whsec_` is not base64.
    #[error("the webhook secret is not `whsec_` followed by base64")]
    NotBase64,
    /// The key is shorter or longer than the specification allows.
    #[error(
        "the webhook secret's key is {0} bytes; it must be {MIN_KEY_BYTES} to {MAX_KEY_BYTES}"
    )]
    Length(usize),
}

impl WebhookSecret {
    /// Decodes `whsec_<base64>` (or the base64 alone).
    ///
    /// # Errors
    /// [`SecretError`] when the text is not base64 or the key is not 24 to 64 bytes.
    pub fn parse(text: &str) -> Result<WebhookSecret, SecretError> {
        let encoded = text.trim();
        let encoded = encoded.strip_prefix(SECRET_PREFIX).unwrap_or(encoded);
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::NotBase64)?;
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len()) {
            return Err(SecretError::Length(key.len()));
        }
        Ok(WebhookSecret {
            key: SecretSlice::from(key),
        })
    }

    /// A secret of these key bytes, e.g. to make `whsec_…` for a receiver ([`Self::encode`]).
    ///
    /// # Errors
    /// [`SecretError::Length`] when the key is not 24 to 64 bytes.
    pub fn from_key(key: Vec<u8>) -> Result<WebhookSecret, SecretError> {
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len()) {
            return Err(SecretError::Length(key.len()));
        }
        Ok(WebhookSecret {
            key: SecretSlice::from(key),
        })
    }

    /// The secret as the receiver stores it: `whsec_<base64>`.
    pub fn encode(&self) -> String {
        format!(
            "{SECRET_PREFIX}{}",
            STANDARD.encode(self.key.expose_secret())
        )
    }

    /// The HMAC over `{id}.{timestamp}.{body}`, ready to finalise or verify.
    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
        // HMAC takes keys of any length; the key's length was checked when it was parsed.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(self.key.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `webhook-signature` header of a delivery: `v1,<base64(HMAC-SHA256)>` over
    /// `{id}.{timestamp}.{body}`, `timestamp` in unix seconds.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self
            .mac(id, &timestamp.to_string(), body)
            .finalize()
            .into_bytes();
        format!("{VERSION},{}", STANDARD.encode(tag))
    }
}

/// Whether `signature_header` (the `webhook-signature` header) holds a valid `v1` signature of
/// `body` by `secret` (`whsec_<base64>`, as `WEBHOOK_SECRET`), for these `webhook-id` and
/// `webhook-timestamp` header values as received. The comparison is in constant time (HMAC's
/// own `verify`). A malformed secret or header is `false`.
///
/// It does not look at the time: refuse a `timestamp` too far from your clock (the
/// specification suggests 5 minutes) to stop replays.
///
/// # Example
/// ```
/// use burrow_shared::kinds::webhook::{verify, WebhookSecret};
///
/// // The sender's side, as the `webhook` kind signs (the key is 24 to 64 random bytes).
/// let secret = WebhookSecret::from_key(vec![7; 32]).unwrap().encode();
/// let body = br#"{"event":"done"}"#;
/// let header = WebhookSecret::parse(&secret)
///     .unwrap()
///     .sign("0190c4f2-7a31-7cc2-a3f4-2f1d6c3b9e10", 1_767_225_600, body);
///
/// // The receiver's side, with the three headers and the raw body.
/// assert!(verify(&secret, "0190c4f2-7a31-7cc2-a3f4-2f1d6c3b9e10", "1767225600", body, &header));
/// assert!(!verify(&secret, "0190c4f2-7a31-7cc2-a3f4-2f1d6c3b9e10", "1767225601", body, &header));
/// ```
pub fn verify(
    secret: &str,
    id: &str,
    timestamp: &str,
    body: &[u8],
    signature_header: &str,
) -> bool {
    let Ok(secret) = WebhookSecret::parse(secret) else {
        return false;
    };
    signature_header.split_whitespace().any(|signature| {
        let Some((VERSION, encoded)) = signature.split_once(',') else {
            return false;
        };
        let Ok(tag) = STANDARD.decode(encoded) else {
            return false;
        };
        secret.mac(id, timestamp, body).verify_slice(&tag).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks reference libraries' tests.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn a_signature_matches_the_reference_libraries() {
        let secret = WebhookSecret::parse(SPEC_SECRET).expect("the reference secret");
        let body = br#"{"test": 2432232314}"#;
        let header = secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body);
        assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(
            SPEC_SECRET,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            body,
            &header
        ));
    }

    #[test]
    fn one_valid_signature_among_several_is_enough() {
        let secret = WebhookSecret::from_key(vec![1; 32]).expect("key");
        let other = WebhookSecret::from_key(vec![2; 32]).expect("key");
        let header = format!(
            "{} v2,abc {}",
            other.sign("id", 5, b"{}"),
            secret.sign("id", 5, b"{}")
        );
        assert!(verify(&secret.encode(), "id", "5", b"{}", &header));
        assert!(!verify(
            &secret.encode(),
            "id",
            "5",
            b"{}",
            &other.sign("id", 5, b"{}")
        ));
    }

    #[test]
    fn a_changed_body_id_or_malformed_header_does_not_verify() {
        let secret = WebhookSecret::from_key(vec![3; 24]).expect("key");
        let header = secret.sign("id", 5, b"{}");
        let encoded = secret.encode();
        assert!(!verify(&encoded, "id", "5", b"{ }", &header));
        assert!(!verify(&encoded, "id2", "5", b"{}", &header));
        assert!(!verify(&encoded, "id", "5", b"{}", "v1,not base64!"));
        assert!(!verify(&encoded, "id", "5", b"{}", ""));
        assert!(!verify("not a secret", "id", "5", b"{}", &header));
    }

    #[test]
    fn secrets_outside_the_specifications_lengths_are_refused() {
        assert_eq!(
            WebhookSecret::parse("whsec_c2hvcnQ=").err(),
            Some(SecretError::Length(5))
        );
        assert_eq!(
            WebhookSecret::parse("whsec_!!").err(),
            Some(SecretError::NotBase64)
        );
        let secret = WebhookSecret::from_key(vec![9; 64]).expect("key");
        assert!(WebhookSecret::parse(&secret.encode()).is_ok());
        assert!(!format!("{secret:?}").contains(&secret.encode()[6..]));
    }
}
