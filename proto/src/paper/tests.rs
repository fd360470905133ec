//! The paper key's promises: it reads back what it wrote, however it is spaced and cased;
//! every single typo and every swap of two neighbours is caught and placed in its group;
//! and no message repeats what was typed.

use proptest::prelude::*;

use super::*;

fn sample_secret(seed: u8) -> [u8; 32] {
    let mut s = [0u8; 32];
    for (i, b) in s.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37).wrapping_add(seed).rotate_left(3);
    }
    s
}

/// The typed characters of each line, spaces left out.
fn typed_lines(key: &PaperKey) -> Vec<Vec<char>> {
    key.to_text().lines().map(|l| l.chars().filter(|c| !c.is_whitespace()).collect()).collect()
}

fn text_of_lines(lines: &[Vec<char>]) -> String {
    lines.iter().map(|l| l.iter().collect::<String>() + "\n").collect()
}

/// Asserts `e`'s message holds no group of the key as typed (neither the right nor the
/// mistyped one): errors name places, never contents.
fn assert_message_is_clean(e: &PaperError, lines: &[Vec<char>]) {
    let msg = e.to_string();
    for line in lines {
        for group in line.chunks(4) {
            let g: String = group.iter().collect();
            assert!(!msg.contains(&g), "the message {msg:?} repeats {g:?}");
        }
    }
}

#[test]
fn a_key_reads_back_and_looks_as_documented() {
    let secret = sample_secret(1);
    let key = PaperKey::encode(&secret);
    let text = key.to_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), LINES);
    for line in &lines {
        // "XXXX XXXX XXXX XXXX XXXX  YYY"
        assert_eq!(line.len(), 5 * 4 + 4 + 2 + 3, "{line:?}");
        assert!(line.chars().all(|c| c == ' ' || ALPHABET.contains(&(c as u8))));
    }
    assert!(text.starts_with('1'), "format 1 keys start with 1");
    assert_eq!(*decode(&text).unwrap(), secret);
    assert!(!format!("{key:?}").contains(&lines[0][..4]));
}

#[test]
fn spacing_dashes_case_and_look_alike_letters_do_not_matter() {
    let secret = sample_secret(2);
    let key = PaperKey::encode(&secret);
    let typed: String = typed_lines(&key)
        .iter()
        .map(|l| {
            let s: String = l
                .iter()
                .enumerate()
                .map(|(i, &c)| match c {
                    '0' => 'o',
                    '1' if i % 2 == 0 => 'I',
                    '1' => 'l',
                    c if i % 3 == 0 => c.to_ascii_lowercase(),
                    c => c,
                })
                .collect();
            // Any grouping: dashes every 3, a tab, trailing spaces.
            let mut out = String::from("  ");
            for (i, c) in s.chars().enumerate() {
                if i > 0 && i % 3 == 0 {
                    out.push(if i % 2 == 0 { '-' } else { '\t' });
                }
                out.push(c);
            }
            out + "   \n\n"
        })
        .collect();
    let with_comment = format!("# arka paper key\n{typed}");
    assert_eq!(*decode(&with_comment).unwrap(), secret);
}

#[test]
fn every_single_typo_is_caught_and_placed_in_its_group() {
    for seed in [3u8, 200] {
        let key = PaperKey::encode(&sample_secret(seed));
        let lines = typed_lines(&key);
        for (l, line) in lines.iter().enumerate() {
            for (p, &right) in line.iter().enumerate() {
                for &wrong in ALPHABET.iter().map(|&b| b as char).filter(|&c| c != right).collect::<Vec<_>>().iter() {
                    let mut typo = lines.clone();
                    typo[l][p] = wrong;
                    let e = decode(&text_of_lines(&typo)).expect_err("a typo was accepted");
                    assert_eq!(e, PaperError::Mistyped { line: l + 1, place: Place::of(p) }, "line {l}, pos {p}");
                    assert_message_is_clean(&e, &typo);
                    assert_eq!(check_line(l + 1, &typo[l].iter().collect::<String>()), Err(e));
                }
            }
        }
    }
}

#[test]
fn every_swap_of_two_neighbours_is_caught_and_placed_in_its_groups() {
    for seed in [4u8, 99] {
        let key = PaperKey::encode(&sample_secret(seed));
        let lines = typed_lines(&key);
        for (l, line) in lines.iter().enumerate() {
            for p in 0..line.len() - 1 {
                if line[p] == line[p + 1] {
                    continue; // swapping equal characters changes nothing
                }
                let mut typo = lines.clone();
                typo[l].swap(p, p + 1);
                let e = decode(&text_of_lines(&typo)).expect_err("a swap was accepted");
                assert_message_is_clean(&e, &typo);
                let (a, b) = (Place::of(p), Place::of(p + 1));
                let want = if a == b {
                    PaperError::Mistyped { line: l + 1, place: a }
                } else {
                    PaperError::MistypedEither { line: l + 1, places: [a, b] }
                };
                assert_eq!(e, want, "line {l}, swap at {p}");
            }
        }
    }
}

#[test]
fn lines_typed_in_the_wrong_order_are_recognised() {
    let key = PaperKey::encode(&sample_secret(5));
    let mut lines = typed_lines(&key);
    lines.swap(1, 2);
    let e = decode(&text_of_lines(&lines)).unwrap_err();
    assert_eq!(e, PaperError::Several(vec![PaperError::OutOfPlace { line: 2 }, PaperError::OutOfPlace { line: 3 }]));
    assert!(e.to_string().contains("line 2 is another line of the key"), "{e}");
}

#[test]
fn missing_joined_and_foreign_characters_are_named() {
    let key = PaperKey::encode(&sample_secret(6));
    let lines = typed_lines(&key);
    let text = text_of_lines(&lines);

    let two: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
    assert_eq!(decode(&two), Err(PaperError::LineCount { found: 2 }));
    assert_eq!(decode(&text.replace('\n', " ")), Err(PaperError::LineCount { found: 1 }));

    let mut four = text.clone();
    four.push_str(text.lines().next().unwrap());
    assert_eq!(decode(&four), Err(PaperError::LineCount { found: 4 }));
    let many = text.repeat(20);
    assert_eq!(decode(&many), Err(PaperError::LineCount { found: 60 }));
    assert_eq!(check_line(40, &lines[0].iter().collect::<String>()), Err(PaperError::LineCount { found: 40 }));

    let mut short = lines.clone();
    short[1].remove(7);
    assert_eq!(decode(&text_of_lines(&short)), Err(PaperError::Length { line: 2, found: LINE_LEN - 1 }));

    let mut foreign = lines.clone();
    foreign[2][9] = 'U';
    let e = decode(&text_of_lines(&foreign)).unwrap_err();
    assert_eq!(e, PaperError::BadCharacter { line: 3, place: Place::Group(3) });
    assert!(!e.to_string().contains("U,") || e.to_string().contains("I, L, O and U"));
}

#[test]
fn typos_on_two_lines_are_both_reported() {
    let key = PaperKey::encode(&sample_secret(7));
    let mut lines = typed_lines(&key);
    lines[0][5] = if lines[0][5] == 'A' { 'B' } else { 'A' };
    lines[2][21] = if lines[2][21] == 'A' { 'B' } else { 'A' };
    let e = decode(&text_of_lines(&lines)).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("line 1, group 2 does not match its checksum: check it against the paper"), "{msg}");
    assert!(msg.contains("line 3: its checksum"), "{msg}");
}

#[test]
fn another_format_is_refused_with_advice() {
    // A well-formed line 1 that says format 2.
    let mut data = [0u8; DATA_PER_LINE];
    data[0] = 2;
    let mut line: Vec<u8> = data.to_vec();
    line.extend(line_code::check_symbols(&data, 1));
    let e = check_line(1, &text_of(&line)).unwrap_err();
    assert_eq!(e, PaperError::Format { found: 2 });
    assert!(e.to_string().contains("use a newer arka"));
}

#[test]
fn an_age_identity_is_not_taken_for_a_paper_key() {
    assert!(!looks_like_paper("# comment\nAGE-SECRET-KEY-1QQQ\n"));
    assert!(!looks_like_paper("age-secret-key-1qqq"));
    assert!(looks_like_paper("1ABC DEFG\n"));
    assert!(looks_like_paper("1abc-defg-u123\n# note\n\nzzzz\n"), "typos and foreign letters are still paper");
    let recipient = "age1dhd070xk907j928x8rmhhjgxp2setsex0hmspm8aslul77c3rgwqlfy44p";
    assert!(!looks_like_paper(recipient), "a recipient is not a key");
    assert!(!looks_like_paper(&format!("ARKA-AGENT-KEY-1-{}", "ab".repeat(96))), "an agent key is not paper");
    assert!(!looks_like_paper("<html>"), "nor is another file");
    assert!(!looks_like_paper("# only a comment\n\n"), "nor is nothing");
}

proptest! {
    /// Up to three wrong characters on one line are always caught (the code's distance is 4).
    #[test]
    fn three_typos_on_a_line_are_caught(
        line in 0..LINES,
        at in proptest::sample::subsequence((0..LINE_LEN).collect::<Vec<_>>(), 1..=3),
        by in proptest::array::uniform3(1u8..32),
    ) {
        let key = PaperKey::encode(&sample_secret(8));
        let mut lines = typed_lines(&key);
        for (&p, &d) in at.iter().zip(&by) {
            let s = symbol_of(lines[line][p]).unwrap() ^ d;
            lines[line][p] = ALPHABET[s as usize] as char;
        }
        let e = decode(&text_of_lines(&lines)).unwrap_err();
        prop_assert_eq!(e.line(), Some(line + 1));
    }

    #[test]
    fn any_secret_round_trips(secret in proptest::array::uniform32(any::<u8>())) {
        let key = PaperKey::encode(&secret);
        prop_assert_eq!(*decode(&key.to_text()).unwrap(), secret);
        prop_assert_eq!(*decode(&key.to_text().to_lowercase()).unwrap(), secret);
    }

    /// Whatever is typed, decoding returns an answer (no panic), and accepts only a key.
    #[test]
    fn garbage_is_refused_without_panic(text in "[0-9A-Za-z \\-\n#]{0,120}") {
        if let Ok(secret) = decode(&text) {
            let again = PaperKey::encode(&secret);
            prop_assert_eq!(*decode(&again.to_text()).unwrap(), *secret);
        }
    }
}
