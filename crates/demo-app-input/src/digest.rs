/// A `/store/{hash}` name: the lowercase hex SHA-256 of a stored body.
pub fn is_digest(hash: &str) -> bool {
    hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_lowercase_sha256_hex_is_a_name() {
        assert!(super::is_digest(&"ab".repeat(32)));
        assert!(!super::is_digest(&"AB".repeat(32)), "uppercase");
        assert!(!super::is_digest(&"ab".repeat(31)), "too short");
        for bad in ["", "..", "../../etc/passwd", &format!("{}/", "a".repeat(63))] {
            assert!(!super::is_digest(bad), "{bad}");
        }
    }
}
