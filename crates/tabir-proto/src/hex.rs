//! Lower-case hex, the text form of hashes, keys and signatures in the protocol.

/// Encode bytes as lower-case hex.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // Sized once: hex of a secret leaves no copy in freed memory.
    let mut out = String::with_capacity(2 * bytes.len());
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Decode exactly `N` bytes from `2 N` hex characters (either case).
pub fn decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Decode any even number of hex characters; None for anything else. The output is sized
/// once, so a secret decoded here leaves no copy in freed memory.
pub fn decode_vec(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 2);
    for i in (0..text.len()).step_by(2) {
        out.push(u8::from_str_radix(&text[i..i + 2], 16).ok()?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip_and_refusals() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(super::encode(&bytes), "0001abff");
        assert_eq!(super::decode::<4>("0001ABff"), Some(bytes));
        assert_eq!(super::decode::<4>("0001abf"), None);
        assert_eq!(super::decode::<4>("0001abfg"), None);
        assert_eq!(super::decode::<2>("é1"), None);
        assert_eq!(super::decode::<2>("+f+f"), None);
        assert_eq!(super::decode_vec("0001ABff"), Some(bytes.to_vec()));
        assert_eq!(super::decode_vec(""), Some(Vec::new()));
        assert_eq!(super::decode_vec("abc"), None);
        assert_eq!(super::decode_vec("+f+f"), None);
    }
}
