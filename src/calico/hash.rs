//! The hashes Calico names things with.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha224};

/// base64url without padding (RFC 4648 §5), the alphabet of every Calico hashed name.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Calico's `MakeUniqueID(prefix, content)`:
/// `prefix + ":" + base64url(SHA-224(prefix + ":" + content))`.
pub fn make_unique_id(prefix: &str, content: &str) -> String {
    let mut h = Sha224::new();
    h.update(prefix.as_bytes());
    h.update(b":");
    h.update(content.as_bytes());
    format!("{prefix}:{}", b64url(&h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_id_of_all_selector_matches_calico() {
        assert_eq!(
            make_unique_id("s", "all()"),
            "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"
        );
    }

    #[test]
    fn service_id_matches_calico() {
        assert_eq!(
            make_unique_id("svc", "default/svc"),
            "svc:Jhwii46PCMT5NlhWsUqZmv7al8TeHFbNQMhoVg"
        );
    }
}
