//! The generator behind `random_get`: ChaCha20 keyed by the request's seed.
//!
//! The micro guest has no trustworthy entropy of its own, so the host hands a
//! 32-byte seed in each request and the runner expands it. ChaCha20 is a real
//! stream cipher (so a program that draws key material gets good bytes if the
//! seed is good), needs only u32 add/xor/rotate (no floats, no SIMD: safe under
//! the PVM emulator), and is ~40 lines. The same seed gives the same bytes,
//! which makes runs reproducible when the host wants that.

/// ChaCha20 keystream generator (RFC 8439 block function, nonce 0).
pub struct ChaChaRng {
    key: [u32; 8],
    counter: u64,
    block: [u8; 64],
    used: usize,
}

const CONSTANTS: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

impl ChaChaRng {
    /// A generator keyed by `seed`.
    pub fn new(seed: [u8; 32]) -> Self {
        let mut key = [0u32; 8];
        for (word, bytes) in key.iter_mut().zip(seed.chunks_exact(4)) {
            *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        ChaChaRng {
            key,
            counter: 0,
            block: [0; 64],
            used: 64,
        }
    }

    /// Fills `out` with the next keystream bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        for byte in out.iter_mut() {
            if self.used == self.block.len() {
                self.refill();
            }
            *byte = self.block[self.used];
            self.used += 1;
        }
    }

    fn refill(&mut self) {
        let mut input = [0u32; 16];
        input[..4].copy_from_slice(&CONSTANTS);
        input[4..12].copy_from_slice(&self.key);
        input[12] = self.counter as u32;
        input[13] = (self.counter >> 32) as u32;
        // Words 14 and 15 (the rest of the nonce) stay zero.
        let mut state = input;
        for _ in 0..10 {
            quarter_round(&mut state, 0, 4, 8, 12);
            quarter_round(&mut state, 1, 5, 9, 13);
            quarter_round(&mut state, 2, 6, 10, 14);
            quarter_round(&mut state, 3, 7, 11, 15);
            quarter_round(&mut state, 0, 5, 10, 15);
            quarter_round(&mut state, 1, 6, 11, 12);
            quarter_round(&mut state, 2, 7, 8, 13);
            quarter_round(&mut state, 3, 4, 9, 14);
        }
        for (index, chunk) in self.block.chunks_exact_mut(4).enumerate() {
            let word = state[index].wrapping_add(input[index]);
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        self.counter = self.counter.wrapping_add(1);
        self.used = 0;
    }
}

fn quarter_round(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(16);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(12);
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(8);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(7);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8439 section 2.3.2 uses a nonzero nonce; with an all-zero key and
    /// nonce, block 0 is the well-known test vector from RFC 7539 A.1 #1.
    #[test]
    fn zero_key_block_matches_rfc_vector() {
        let mut rng = ChaChaRng::new([0; 32]);
        let mut out = [0u8; 16];
        rng.fill(&mut out);
        assert_eq!(
            out,
            [
                0x76, 0xb8, 0xe0, 0xad, 0xa0, 0xf1, 0x3d, 0x90, 0x40, 0x5d, 0x6a, 0xe5, 0x53, 0x86,
                0xbd, 0x28
            ]
        );
    }

    #[test]
    fn same_seed_same_stream_across_block_boundaries() {
        let mut a = ChaChaRng::new([7; 32]);
        let mut b = ChaChaRng::new([7; 32]);
        let mut whole = [0u8; 150];
        a.fill(&mut whole);
        let mut parts = [0u8; 150];
        b.fill(&mut parts[..63]);
        b.fill(&mut parts[63..130]);
        b.fill(&mut parts[130..]);
        assert_eq!(whole, parts);
        let mut c = ChaChaRng::new([8; 32]);
        let mut other = [0u8; 150];
        c.fill(&mut other);
        assert_ne!(whole, other);
    }
}
