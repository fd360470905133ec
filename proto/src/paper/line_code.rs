//! The check code of one paper-key line: three check symbols that make the line a codeword
//! of a Reed–Solomon code over GF(32) (one base32 character is one field element).
//!
//! Why this code and not a truncated hash: its minimum distance is 4, so *every* change of
//! up to three characters of a line (a typo, two swapped neighbours, a typo in the checksum
//! itself) fails the check, not just most of them; and the syndromes of a single typo or of
//! a swap say exactly where it is, so the reader can name the group to look at again.
//!
//! The codeword is `x_0 … x_{n-1}` (the typed symbols, check symbols last) plus one symbol
//! that is never typed: the line's number, at position [`LINE_NUMBER_POSITION`]. A line
//! typed in the wrong place therefore fails too, and is recognised as such. Each line
//! satisfies `Σ x_i·α^(k·i) = 0` for k = 0, 1, 2 (over all positions, the line number
//! included).

/// x⁵ + x² + 1, a primitive polynomial: α = x generates all 31 non-zero elements.
const POLY: u16 = 0b10_0101;

/// Where the untyped line number sits. α has order 31, so positions 0..=30 are distinct:
/// a line may have up to 30 typed symbols.
pub(super) const LINE_NUMBER_POSITION: usize = 30;

/// α^i for i in 0..62 (doubled so that products need no reduction modulo 31).
const EXP: [u8; 62] = {
    let mut t = [0u8; 62];
    let mut v: u16 = 1;
    let mut i = 0;
    while i < 62 {
        t[i] = v as u8;
        v <<= 1;
        if v & 0b10_0000 != 0 {
            v ^= POLY;
        }
        i += 1;
    }
    t
};

/// log_α(v) for v in 1..32 (index 0 unused).
const LOG: [u8; 32] = {
    let mut t = [0u8; 32];
    let mut i = 0;
    while i < 31 {
        t[EXP[i] as usize] = i as u8;
        i += 1;
    }
    t
};

fn mul(a: u8, b: u8) -> u8 {
    if a == 0 || b == 0 {
        return 0;
    }
    EXP[LOG[a as usize] as usize + LOG[b as usize] as usize]
}

/// `a / b`, `b` non-zero.
fn div(a: u8, b: u8) -> u8 {
    if a == 0 {
        return 0;
    }
    EXP[(LOG[a as usize] as usize + 31 - LOG[b as usize] as usize) % 31]
}

fn alpha(i: usize) -> u8 {
    EXP[i % 31]
}

/// Check symbols a line ends with: three, so the code's minimum distance is 4 and a swap
/// of neighbours is located as exactly as a single typo.
pub(super) const CHECK_LEN: usize = 3;

/// The syndromes `Σ x_i·α^(k·i)`, k = 0, 1, 2, of `symbols` as line `line` (all zero for an
/// intact line).
fn syndromes(symbols: &[u8], line: u8) -> [u8; CHECK_LEN] {
    let mut s = [0u8; CHECK_LEN];
    let at = symbols.iter().copied().enumerate().chain(std::iter::once((LINE_NUMBER_POSITION, line)));
    for (i, x) in at {
        for (k, sk) in s.iter_mut().enumerate() {
            *sk ^= mul(x, alpha(k * i));
        }
    }
    s
}

/// The check symbols that follow `data` on line `line` (`data.len() <= 27`): they cancel
/// the data's syndromes, by solving a 3×3 Vandermonde system over GF(32).
pub(super) fn check_symbols(data: &[u8], line: u8) -> [u8; CHECK_LEN] {
    let target = syndromes(data, line);
    // Row k: Σ_j α^(k·(n+j))·c_j = target_k, columns j for the positions n, n+1, n+2.
    let mut m = [[0u8; CHECK_LEN + 1]; CHECK_LEN];
    for (k, row) in m.iter_mut().enumerate() {
        for (j, cell) in row[..CHECK_LEN].iter_mut().enumerate() {
            *cell = alpha(k * (data.len() + j));
        }
        row[CHECK_LEN] = target[k];
    }
    // Gauss–Jordan; a Vandermonde matrix of distinct α-powers is invertible, so every
    // pivot is non-zero once rows are swapped into place.
    for col in 0..CHECK_LEN {
        let pivot = (col..CHECK_LEN).find(|&r| m[r][col] != 0).expect("an invertible matrix");
        m.swap(col, pivot);
        let inv = div(1, m[col][col]);
        for cell in m[col].iter_mut() {
            *cell = mul(*cell, inv);
        }
        let pivot_row = m[col];
        for (_, row) in m.iter_mut().enumerate().filter(|(r, _)| *r != col) {
            let f = row[col];
            for (cell, p) in row.iter_mut().zip(pivot_row) {
                *cell ^= mul(f, p);
            }
        }
    }
    [m[0][CHECK_LEN], m[1][CHECK_LEN], m[2][CHECK_LEN]]
}

/// What is wrong with a line, as far as its check symbols can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Fault {
    /// The one symbol at this position differs.
    At(usize),
    /// The symbols at this position and the next are swapped.
    Swapped(usize),
    /// The line is intact, but as another line: typed in the wrong place.
    OtherLine,
    /// More than one typo or swap: detected (up to three wrong symbols, always), not located.
    Unlocated,
}

/// `None` if `symbols` is an intact line `line` (below 32, a field element), else what
/// the syndromes point at.
pub(super) fn fault(symbols: &[u8], line: u8) -> Option<Fault> {
    let [s0, s1, s2] = syndromes(symbols, line);
    if [s0, s1, s2] == [0; 3] {
        return None;
    }
    // One error of value e at position p gives (e, e·α^p, e·α^2p).
    if s0 != 0 && mul(s0, s2) == mul(s1, s1) {
        let p = LOG[div(s1, s0) as usize] as usize;
        return Some(if p < symbols.len() {
            Fault::At(p)
        } else if p == LINE_NUMBER_POSITION {
            Fault::OtherLine
        } else {
            Fault::Unlocated
        });
    }
    // Swapping x_i and x_(i+1) adds d = x_i + x_(i+1) at both: (0, d·α^i·(1+α), d·α^2i·(1+α)²),
    // so s2/s1 = α^i·(1+α) gives i, and the typed pair must differ by d.
    if s0 == 0 && s1 != 0 && s2 != 0 {
        let one_plus_alpha = 1 ^ alpha(1);
        let i = LOG[div(s2, mul(s1, one_plus_alpha)) as usize] as usize;
        let fits = i + 1 < symbols.len() && mul(symbols[i] ^ symbols[i + 1], mul(alpha(i), one_plus_alpha)) == s1;
        if fits {
            return Some(Fault::Swapped(i));
        }
    }
    Some(Fault::Unlocated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_tables_are_a_field() {
        // α generates every non-zero element exactly once.
        let mut seen = [false; 32];
        for &v in &EXP[..31] {
            assert!(v != 0 && !seen[v as usize], "α^i repeats {v}");
            seen[v as usize] = true;
        }
        for a in 1..32u8 {
            for b in 1..32u8 {
                assert_eq!(div(mul(a, b), b), a);
            }
        }
    }

    #[test]
    fn check_symbols_make_an_intact_line_and_depend_on_the_line_number() {
        let data: Vec<u8> = (0..20).map(|i| (i * 7 + 3) % 32).collect();
        for line in 1..=3u8 {
            let mut full = data.clone();
            full.extend(check_symbols(&data, line));
            assert_eq!(fault(&full, line), None);
            for other in (1..=3u8).filter(|&o| o != line) {
                assert_eq!(fault(&full, other), Some(Fault::OtherLine));
            }
        }
    }
}
