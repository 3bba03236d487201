//! Recovery codes: ten single-use codes shown once, stored as SHA-256 hashes. Each is sixteen
//! characters from a 31-symbol alphabet without look-alikes (no 0/o, 1/l/i), about 79 random
//! bits, so a stored hash can't be reversed by guessing; four groups keep them easy to type.

use rand::rngs::OsRng;
use rand::Rng;

use crate::secret::sha256;

pub const COUNT: usize = 10;
const ALPHABET: &[u8; 31] = b"abcdefghjkmnpqrstuvwxyz23456789";
const GROUPS: usize = 4;
const GROUP_LEN: usize = 4;

/// A new set of codes, as shown to the user ("abcd-efgh-jkmn-pqrs").
pub fn generate() -> Vec<String> {
    (0..COUNT)
        .map(|_| {
            let groups: Vec<String> = (0..GROUPS)
                .map(|_| (0..GROUP_LEN).map(|_| char::from(ALPHABET[OsRng.gen_range(0..ALPHABET.len())])).collect())
                .collect();
            groups.join("-")
        })
        .collect()
}

/// The code as typed, reduced to its characters: case, spaces and dashes don't matter.
pub fn normalize(code: &str) -> Option<String> {
    let chars: String =
        code.chars().filter(|c| !c.is_whitespace() && *c != '-').map(|c| c.to_ascii_lowercase()).collect();
    (chars.len() == GROUPS * GROUP_LEN && chars.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(chars)
}

/// What is stored: the SHA-256 of the normalised code.
pub fn hash(code: &str) -> Option<[u8; 32]> {
    normalize(code).map(|c| sha256(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_typed_forgivingly() {
        let codes = generate();
        assert_eq!(codes.len(), COUNT);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), COUNT);
        let code = &codes[0];
        assert_eq!(code.len(), 19);
        assert_eq!(hash(code), hash(&code.to_uppercase().replace('-', " ")));
        assert!(hash("short").is_none());
        assert!(hash("abcd-efgh-jkmn-pqr!").is_none());
    }
}
