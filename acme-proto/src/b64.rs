//! Unpadded base64url, the only base64 flavour JOSE and ACME use (RFC 7515 §2).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Encodes bytes as unpadded base64url.
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes unpadded base64url. Padding, whitespace and the standard alphabet are refused:
/// RFC 7515 §2 requires the URL-safe alphabet with all trailing `=` removed.
pub fn decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    URL_SAFE_NO_PAD.decode(text)
}

/// Decodes base64url that may or may not carry `=` padding.
///
/// Used for values people paste, such as an EAB HMAC key, where some CAs hand out padded text.
pub fn decode_lenient(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    URL_SAFE_NO_PAD.decode(text.trim().trim_end_matches('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        let bytes = [0xfb, 0xff, 0x00, 0x10];
        let text = encode(bytes);
        assert_eq!(text, "-_8AEA");
        assert_eq!(decode(&text).unwrap(), bytes);
        assert!(decode("-_8AEA==").is_err(), "padding is refused");
        assert!(
            decode("+/8AEA").is_err(),
            "the standard alphabet is refused"
        );
        assert_eq!(decode_lenient("-_8AEA==").unwrap(), bytes);
    }
}
