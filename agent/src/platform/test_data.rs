//! Data for the tests of every layer, kept in the lowest one so that any test may use it.

/// Seeded xorshift bytes: random-looking, compressible by nothing, the same every run.
pub fn pseudo_random(len: usize, mut state: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}
