//! Trace and span ids as lowercase hex, both ways, the only spelling W3C
//! Trace Context and the log lines use. By table, a byte at a time: the
//! `hex` crate's generic encoder and decoder cost 15–20 instructions a byte,
//! and every traced request writes or reads 24 bytes of ids two or three
//! times (its log line, the outgoing `traceparent`, the incoming one).

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// The value of each lowercase hex digit; `INVALID` for any other byte
/// (uppercase too: the specification refuses it).
const VALUES: [u8; 256] = {
    let mut values = [INVALID; 256];
    let mut i = 0;
    while i < 16 {
        values[DIGITS[i] as usize] = i as u8;
        i += 1;
    }
    values
};
const INVALID: u8 = 0xff;

/// `bytes` as `HEX` lowercase digits.
pub fn encode<const N: usize, const HEX: usize>(bytes: [u8; N]) -> [u8; HEX] {
    const { assert!(HEX == 2 * N, "two digits a byte") };
    let mut text = [0u8; HEX];
    for (pair, byte) in text.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0xf)];
    }
    text
}

/// `N` bytes from exactly `2 * N` lowercase hex digits, or None.
pub fn decode<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    if digits.len() != 2 * N {
        return None;
    }
    let mut bytes = [0u8; N];
    let mut invalid = 0;
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        let (high, low) = (VALUES[usize::from(pair[0])], VALUES[usize::from(pair[1])]);
        // One test at the end: an invalid digit has its high bits set.
        invalid |= high | low;
        *byte = (high << 4) | (low & 0xf);
    }
    (invalid & 0xf0 == 0).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ways_as_the_hex_crate_for_every_byte() {
        let all: [u8; 256] = std::array::from_fn(|i| i as u8);
        for chunk in all.chunks_exact(8) {
            let bytes: [u8; 8] = chunk.try_into().unwrap();
            let text = encode::<8, 16>(bytes);
            assert_eq!(text.as_slice(), hex::encode(bytes).as_bytes());
            assert_eq!(decode::<8>(&text), Some(bytes));
        }
    }

    #[test]
    fn only_lowercase_digits_of_the_exact_length_are_read() {
        assert_eq!(decode::<2>(b"0aff"), Some([0x0a, 0xff]));
        for bad in [&b"0AFF"[..], b"0afg", b"0af", b"0aff0", b"0a f", b"", "0a\u{e9}".as_bytes(), b"-1ff"] {
            assert_eq!(decode::<2>(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        // Every byte that is not a lowercase digit, in either place.
        for byte in 0..=255u8 {
            let valid = byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte);
            assert_eq!(decode::<1>(&[byte, b'0']).is_some(), valid, "{byte:#x} first");
            assert_eq!(decode::<1>(&[b'0', byte]).is_some(), valid, "{byte:#x} second");
        }
    }
}
