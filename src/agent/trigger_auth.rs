//! Who may call the trigger endpoint: a bearer token (`--trigger-token-file`) and/or an
//! HMAC-SHA256 signature of the request body (`--trigger-hmac-secret-file`), GitHub's
//! `X-Hub-Signature-256: sha256=<hex>` or Gitea's `X-Gitea-Signature: <hex>`. Neither
//! configured: the endpoint is off (403), never open.
//!
//! Both comparisons take the same time whatever the bytes (no early exit). HMAC is built from
//! `sha2` (RFC 2104, tested against RFC 4231's vectors): a second crate for 20 lines was not
//! worth it. The secrets are [`Secret`]s: no log line, error or response carries them.

use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// The header of a GitHub-style signature: `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// Gitea's header: the hex alone.
pub const GITEA_SIGNATURE_HEADER: &str = "x-gitea-signature";

/// The trigger endpoint's credentials.
#[derive(Debug, Clone, Default)]
pub struct TriggerAuth {
    /// The bearer token callers send as `Authorization: Bearer <token>`.
    pub token: Option<Secret>,
    /// The key of the body's HMAC-SHA256 signature.
    pub hmac_secret: Option<Secret>,
}

/// Why a trigger request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No credential is configured: the endpoint is off (403).
    Off,
    /// The request carries no valid token or signature (401).
    Unauthorized,
}

impl TriggerAuth {
    /// Whether any credential is configured (otherwise the endpoint answers 403).
    pub fn enabled(&self) -> bool {
        self.token.is_some() || self.hmac_secret.is_some()
    }

    /// Checks a request: its `Authorization` header, its signature headers and its body.
    /// Accepted when any configured method matches.
    pub fn check(
        &self,
        authorization: Option<&[u8]>,
        signature: Option<&[u8]>,
        gitea_signature: Option<&[u8]>,
        body: &[u8],
    ) -> Result<(), Refusal> {
        if !self.enabled() {
            return Err(Refusal::Off);
        }
        if let (Some(token), Some(header)) = (&self.token, authorization)
            && let Some(sent) = strip_prefix_ignore_case(header, b"bearer ")
            && constant_time_eq(trim(sent), token.expose().as_bytes())
        {
            return Ok(());
        }
        if let Some(secret) = &self.hmac_secret {
            let expected = hmac_sha256(secret.expose().as_bytes(), body);
            let sent = (signature.and_then(|s| s.strip_prefix(b"sha256=")))
                .or(gitea_signature)
                .and_then(|hex_text| hex::decode(trim(hex_text)).ok());
            if sent.is_some_and(|sent| constant_time_eq(&sent, &expected)) {
                return Ok(());
            }
        }
        Err(Refusal::Unauthorized)
    }
}

/// HMAC-SHA256 of `message` under `key` (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Whether `a` and `b` are equal, in a time that depends on their lengths only.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let differ = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(differ) == 0
}

fn strip_prefix_ignore_case<'a>(text: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &text[prefix.len()..])
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 1.
        let key = [0x0b; 20];
        assert_eq!(
            hex::encode(hmac_sha256(&key, b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        // Test case 2: a key shorter than the block.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        let key = [0xaa; 131];
        assert_eq!(
            hex::encode(hmac_sha256(
                &key,
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn github_documents_this_signature() {
        // docs.github.com, "Validating webhook deliveries": secret "It's a Secret to Everybody",
        // payload "Hello, World!".
        assert_eq!(
            hex::encode(hmac_sha256(b"It's a Secret to Everybody", b"Hello, World!")),
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    fn auth(token: Option<&str>, secret: Option<&str>) -> TriggerAuth {
        TriggerAuth {
            token: token.map(Secret::new),
            hmac_secret: secret.map(Secret::new),
        }
    }

    #[test]
    fn without_credentials_the_endpoint_is_off() {
        let off = auth(None, None);
        assert_eq!(
            off.check(Some(b"Bearer x"), None, None, b""),
            Err(Refusal::Off)
        );
    }

    #[test]
    fn a_bearer_token_must_match_exactly() {
        let auth = auth(Some("s3cret"), None);
        assert_eq!(auth.check(Some(b"Bearer s3cret"), None, None, b""), Ok(()));
        assert_eq!(
            auth.check(Some(b"bearer s3cret\r"), None, None, b""),
            Ok(())
        );
        for bad in [
            &b"Bearer s3cre"[..],
            &b"Bearer s3cret2"[..],
            &b"Basic s3cret"[..],
            &b"s3cret"[..],
        ] {
            assert_eq!(
                auth.check(Some(bad), None, None, b""),
                Err(Refusal::Unauthorized),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            auth.check(None, None, None, b""),
            Err(Refusal::Unauthorized)
        );
    }

    #[test]
    fn a_signature_must_be_of_this_body_under_this_secret() {
        let auth = auth(None, Some("It's a Secret to Everybody"));
        let good = b"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(auth.check(None, Some(good), None, b"Hello, World!"), Ok(()));
        let gitea = &good[7..];
        assert_eq!(
            auth.check(None, None, Some(gitea), b"Hello, World!"),
            Ok(())
        );
        assert_eq!(
            auth.check(None, Some(good), None, b"Hello, World?"),
            Err(Refusal::Unauthorized)
        );
        assert_eq!(
            auth.check(None, Some(b"sha256=zz"), None, b"Hello, World!"),
            Err(Refusal::Unauthorized)
        );
        // Without the `sha256=` prefix GitHub's header is not accepted.
        assert_eq!(
            auth.check(None, Some(gitea), None, b"Hello, World!"),
            Err(Refusal::Unauthorized)
        );
        // A token is no signature.
        assert_eq!(
            auth.check(Some(b"Bearer It's a Secret to Everybody"), None, None, b""),
            Err(Refusal::Unauthorized)
        );
    }

    #[test]
    fn equal_bytes_compare_equal_and_lengths_matter() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }
}
