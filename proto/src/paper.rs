//! The paper form of a recovery identity (`arka keygen --paper`, read back by
//! `--identity -`): its 32-byte X25519 secret as three short lines a person can print, keep
//! in a safe and type back years later. Layout in docs/FORMAT.md §3.4.
//!
//! ```text
//! 1ABC DEFG HJKM NPQR STVW  XYZ     five groups of four, then the line's three check characters
//! ```
//!
//! The alphabet is Crockford's base32 (no I, L, O, U; typed back in any case, O read as 0
//! and I, L as 1). The 60 data symbols carry 300 bits: the format number (5 bits, so every
//! format-1 key starts with `1`), the secret (256) and a whole-key checksum (39). Each line
//! ends with three check symbols ([`line_code`]) that catch every one, two or three wrong
//! characters on that line, and name the group of a single typo or of two swapped
//! neighbours; the whole-key checksum catches what slips through them. Nothing here ever puts a typed character in a message.

mod line_code;

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

use line_code::Fault;

/// Crockford's base32 alphabet: digits and letters without I, L, O and U.
pub const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// The format this build writes and reads; the first typed character.
pub const FORMAT: u8 = 1;
/// Lines of a format-1 paper key.
pub const LINES: usize = 3;
/// Groups of four data characters on a line.
pub const GROUPS_PER_LINE: usize = 5;
const GROUP_LEN: usize = 4;
const DATA_PER_LINE: usize = GROUPS_PER_LINE * GROUP_LEN;
use line_code::CHECK_LEN;
/// Characters of a line as typed, spaces and dashes left out.
pub const LINE_LEN: usize = DATA_PER_LINE + CHECK_LEN;
const CHECKSUM_BITS: u32 = 39;
const CHECKSUM_CONTEXT: &str = "arka paper key format 1: whole-key checksum";

/// Where on a line something is: a group of four (1-based) or the three check characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Place {
    Group(usize),
    Checksum,
}

impl Place {
    fn of(position: usize) -> Self {
        if position < DATA_PER_LINE {
            Place::Group(position / GROUP_LEN + 1)
        } else {
            Place::Checksum
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Group(g) => write!(f, "group {g}"),
            Place::Checksum => f.write_str("the checksum (its last three characters)"),
        }
    }
}

/// Why typed lines are not a paper key. Lines are numbered from 1 as printed; no variant
/// carries a typed character.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaperError {
    #[error(
        "line {line}, {place} has a character that is not in a paper key (only digits and the letters \
         other than I, L, O and U, which are read as 1, 1, 0): check it against the paper"
    )]
    BadCharacter { line: usize, place: Place },
    #[error(
        "line {line} has {found} characters where a paper key line has {LINE_LEN} (five groups of four and \
         the three checksum characters): type each printed line on a line of its own"
    )]
    Length { line: usize, found: usize },
    #[error("{}", mistyped_message(.line, .place))]
    Mistyped { line: usize, place: Place },
    #[error("line {line}, {} and {} do not match their checksum: check them against the paper", .places[0], .places[1])]
    MistypedEither { line: usize, places: [Place; 2] },
    #[error("line {line} does not match its checksum (more than one character differs): check the whole line against the paper")]
    MistypedLine { line: usize },
    #[error("line {line} is another line of the key: type the lines in the order they are printed")]
    OutOfPlace { line: usize },
    #[error("a paper key has {LINES} lines, each ending with its three checksum characters; {found} given")]
    LineCount { found: usize },
    #[error("this paper key is format {found}, this arka reads format {FORMAT}: use a newer arka")]
    Format { found: u8 },
    #[error(
        "every line matches its checksum but the key as a whole does not: check every line against the paper, \
         character by character"
    )]
    WholeKey,
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Several(Vec<PaperError>),
}

fn mistyped_message(line: &usize, place: &Place) -> String {
    match *place {
        Place::Group(g) => format!("line {line}, group {g} does not match its checksum: check it against the paper"),
        Place::Checksum => {
            format!("line {line}: its checksum (the last three characters) does not match: check the line against the paper")
        }
    }
}

impl PaperError {
    /// The line the error is on, if it is about one line.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::BadCharacter { line, .. }
            | Self::Length { line, .. }
            | Self::Mistyped { line, .. }
            | Self::MistypedEither { line, .. }
            | Self::MistypedLine { line }
            | Self::OutOfPlace { line } => Some(*line),
            _ => None,
        }
    }
}

/// A recovery identity's secret in paper form: [`LINES`] lines of groups and check
/// characters. `Debug` prints `***`; the text is zeroized on drop.
pub struct PaperKey {
    lines: Zeroizing<Vec<Vec<u8>>>,
}

impl fmt::Debug for PaperKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PaperKey(***)")
    }
}

impl PaperKey {
    pub fn encode(secret: &[u8; 32]) -> Self {
        let mut bits = BitWriter::default();
        bits.push(u64::from(FORMAT), 5);
        for &b in secret {
            bits.push(u64::from(b), 8);
        }
        bits.push(whole_key_checksum(secret), CHECKSUM_BITS);
        let symbols = bits.finish();
        let lines = symbols
            .chunks(DATA_PER_LINE)
            .enumerate()
            .map(|(i, data)| {
                let mut line = data.to_vec();
                line.extend(line_code::check_symbols(data, i as u8 + 1));
                line
            })
            .collect();
        Self { lines: Zeroizing::new(lines) }
    }

    /// Each line's groups of four, then its check characters, as printed.
    pub fn lines(&self) -> Vec<(Vec<String>, String)> {
        self.lines
            .iter()
            .map(|line| {
                let groups = line[..DATA_PER_LINE].chunks(GROUP_LEN).map(text_of).collect();
                (groups, text_of(&line[DATA_PER_LINE..]))
            })
            .collect()
    }

    /// The lines as text: `1ABC DEFG HJKM NPQR STVW  XYZ`, one a line.
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut out = String::new();
        for (groups, check) in self.lines() {
            out.push_str(&groups.join(" "));
            out.push_str("  ");
            out.push_str(&check);
            out.push('\n');
        }
        Zeroizing::new(out)
    }
}

fn text_of(symbols: &[u8]) -> String {
    symbols.iter().map(|&s| ALPHABET[s as usize] as char).collect()
}

/// Whether `text` looks like a paper key typed back rather than another key file: every
/// line to read is letters and digits (spaces and dashes aside), no longer than two paper
/// lines, and none starts as an age identity (`AGE-`) or recipient (`age1`) does. An agent
/// key's long hex line, a recipients list or an age identity file are therefore left to
/// their own parsers and messages; a paper key with a typo is still read as one.
pub fn looks_like_paper(text: &str) -> bool {
    let mut lines = text.lines().filter(|l| !is_blank(l)).peekable();
    lines.peek().is_some()
        && lines.all(|line| {
            let t = line.trim_start();
            let starts = |p: &str| t.get(..p.len()).is_some_and(|s| s.eq_ignore_ascii_case(p));
            let mut kept = t.chars().filter(|c| !c.is_whitespace() && *c != '-');
            let len = kept.clone().count();
            !starts("AGE-") && !starts("age1") && len <= 2 * LINE_LEN && kept.all(|c| c.is_ascii_alphanumeric())
        })
}

/// Checks one typed line (1-based `line`): its characters, length and checksum, and for
/// line 1 the format. For reading line by line at a prompt, so a typo is asked again at once.
pub fn check_line(line: usize, typed: &str) -> Result<(), PaperError> {
    if !(1..=LINES).contains(&line) {
        return Err(PaperError::LineCount { found: line });
    }
    let symbols = Zeroizing::new(line_symbols(line, typed)?);
    if line == 1 && symbols[0] != FORMAT {
        return Err(PaperError::Format { found: symbols[0] });
    }
    Ok(())
}

/// True if a typed line holds nothing to read (blank, or a `#` comment as `--paper` prints).
pub fn is_blank(typed: &str) -> bool {
    let t = typed.trim();
    t.is_empty() || t.starts_with('#')
}

/// Reads a paper key typed back: [`LINES`] lines (blank and `#` lines skipped; spaces,
/// dashes and case ignored), every line checked before the whole key. All faulty lines
/// are reported at once.
pub fn decode(text: &str) -> Result<Zeroizing<[u8; 32]>, PaperError> {
    let typed: Vec<&str> = text.lines().filter(|l| !is_blank(l)).collect();
    let mut symbols = Zeroizing::new(Vec::with_capacity(LINES * DATA_PER_LINE));
    let mut errors = Vec::new();
    // Lines past the last are not checked: the count says enough about them.
    for (i, line) in typed.iter().enumerate().take(LINES) {
        match line_symbols(i + 1, line) {
            Ok(mut s) => {
                symbols.extend_from_slice(&s[..DATA_PER_LINE]);
                s.zeroize();
            }
            Err(e) => errors.push(e),
        }
    }
    if typed.len() != LINES && errors.iter().all(|e| matches!(e, PaperError::Length { .. })) {
        // Lines joined or split: the count says more than each line's length.
        return Err(PaperError::LineCount { found: typed.len() });
    }
    match errors.len() {
        0 => {}
        1 => return Err(errors.remove(0)),
        _ => return Err(PaperError::Several(errors)),
    }
    from_symbols(&symbols)
}

/// A typed line's symbols, checksum included, once its characters, length and checksum
/// are right. `line` is 1 to [`LINES`] (the line code takes numbers below 32).
fn line_symbols(line: usize, typed: &str) -> Result<Vec<u8>, PaperError> {
    let mut symbols = Vec::with_capacity(LINE_LEN);
    for c in typed.chars().filter(|c| !c.is_whitespace() && *c != '-') {
        match symbol_of(c) {
            Some(s) => symbols.push(s),
            None => {
                let place = Place::of(symbols.len());
                symbols.zeroize();
                return Err(PaperError::BadCharacter { line, place });
            }
        }
    }
    if symbols.len() != LINE_LEN {
        let found = symbols.len();
        symbols.zeroize();
        return Err(PaperError::Length { line, found });
    }
    match line_code::fault(&symbols, line as u8) {
        None => Ok(symbols),
        Some(fault) => {
            symbols.zeroize();
            Err(mistyped(line, fault))
        }
    }
}

fn symbol_of(c: char) -> Option<u8> {
    let c = match c.to_ascii_uppercase() {
        'O' => '0',
        'I' | 'L' => '1',
        c => c,
    };
    ALPHABET.iter().position(|&a| a as char == c).map(|p| p as u8)
}

/// The error for a line whose checksum fails, naming the groups the code points at.
fn mistyped(line: usize, fault: Fault) -> PaperError {
    match fault {
        Fault::At(p) => PaperError::Mistyped { line, place: Place::of(p) },
        Fault::OtherLine => PaperError::OutOfPlace { line },
        Fault::Unlocated => PaperError::MistypedLine { line },
        Fault::Swapped(i) if Place::of(i) == Place::of(i + 1) => PaperError::Mistyped { line, place: Place::of(i) },
        Fault::Swapped(i) => PaperError::MistypedEither { line, places: [Place::of(i), Place::of(i + 1)] },
    }
}

/// The secret from the data symbols of all lines, after the format and whole-key checks.
fn from_symbols(symbols: &[u8]) -> Result<Zeroizing<[u8; 32]>, PaperError> {
    let mut bits = BitReader { symbols, bit: 0 };
    let format = bits.take(5) as u8;
    if format != FORMAT {
        return Err(PaperError::Format { found: format });
    }
    let mut secret = Zeroizing::new([0u8; 32]);
    for b in secret.iter_mut() {
        *b = bits.take(8) as u8;
    }
    if bits.take(CHECKSUM_BITS) != whole_key_checksum(&secret) {
        return Err(PaperError::WholeKey);
    }
    Ok(secret)
}

/// The first 39 bits of a BLAKE3 hash of the secret (not keyed: it only catches typos).
fn whole_key_checksum(secret: &[u8; 32]) -> u64 {
    let mut h = blake3::Hasher::new_derive_key(CHECKSUM_CONTEXT);
    h.update(secret);
    let mut first = [0u8; 8];
    first.copy_from_slice(&h.finalize().as_bytes()[..8]);
    u64::from_be_bytes(first) >> (64 - CHECKSUM_BITS)
}

/// Packs bits, most significant first, into 5-bit symbols.
#[derive(Default)]
struct BitWriter {
    acc: u8,
    filled: u32,
    out: Vec<u8>,
}

impl BitWriter {
    fn push(&mut self, value: u64, bits: u32) {
        for i in (0..bits).rev() {
            self.acc = (self.acc << 1) | ((value >> i) & 1) as u8;
            self.filled += 1;
            if self.filled == 5 {
                self.out.push(self.acc);
                self.acc = 0;
                self.filled = 0;
            }
        }
    }

    /// The symbols; the bit count is a multiple of 5 by construction (5 + 256 + 39 = 300).
    fn finish(mut self) -> Zeroizing<Vec<u8>> {
        debug_assert_eq!(self.filled, 0);
        Zeroizing::new(std::mem::take(&mut self.out))
    }
}

impl Drop for BitWriter {
    fn drop(&mut self) {
        self.out.zeroize();
        self.acc.zeroize();
    }
}

/// Reads bits, most significant first, back out of 5-bit symbols.
struct BitReader<'a> {
    symbols: &'a [u8],
    bit: usize,
}

impl BitReader<'_> {
    fn take(&mut self, bits: u32) -> u64 {
        let mut v = 0u64;
        for _ in 0..bits {
            let s = self.symbols[self.bit / 5];
            v = (v << 1) | u64::from((s >> (4 - self.bit % 5)) & 1);
            self.bit += 1;
        }
        v
    }
}

#[cfg(test)]
mod tests;
