//! A recovery identity given on standard input (`--identity -`): piped in whole (an
//! identity file, or a paper key's lines), or typed by a person at the terminal from the
//! paper sheet, line by line, with a line that fails its checksum asked again at once.
//! Nothing typed is ever repeated in a message.

use std::io::{BufRead, IsTerminal, Read, Write};

use arka_proto::paper;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};

/// Most a piped identity may be: an identity file is a few hundred bytes, a
/// passphrase-protected one a few hundred more. More is not a key.
const MAX_PIPED: u64 = 64 * 1024;

/// What standard input holds: read whole from a pipe, or typed at the terminal.
pub fn read_stdin() -> Result<Zeroizing<Vec<u8>>> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let text = prompt_lines(&mut stdin.lock(), &mut std::io::stderr())?;
        return Ok(Zeroizing::new(text.as_bytes().to_vec()));
    }
    let mut bytes = Zeroizing::new(Vec::new());
    stdin
        .lock()
        .take(MAX_PIPED + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Key(format!("cannot read the recovery identity from standard input: {e}")))?;
    if bytes.len() as u64 > MAX_PIPED {
        return Err(Error::Key(format!(
            "standard input holds more than {} KiB, which is not a recovery identity: give the identity file, \
             or the paper key's lines, and nothing else",
            MAX_PIPED / 1024
        )));
    }
    Ok(bytes)
}

/// Asks for the paper key line by line on `prompt`, reading `input`; a line that fails its
/// checksum is named and asked again. A first line holding an `AGE-SECRET-KEY-1…` is taken
/// as it is. Returns the text to parse.
pub fn prompt_lines(input: &mut impl BufRead, prompt: &mut impl Write) -> Result<Zeroizing<String>> {
    let say = |prompt: &mut dyn Write, text: &str| {
        // The prompt is a courtesy: a closed stderr must not stop the key being read.
        let _ = write!(prompt, "{text}");
        let _ = prompt.flush();
    };
    say(
        prompt,
        "Type the paper key, one printed line at a time with its last three characters (spaces, dashes and case \
         do not matter), or paste the AGE-SECRET-KEY-1… line.\n",
    );
    let mut text = Zeroizing::new(String::new());
    let mut number = 1;
    while number <= paper::LINES {
        say(prompt, &format!("line {number} of {}: ", paper::LINES));
        let mut line = Zeroizing::new(String::new());
        let read = input.read_line(&mut line).map_err(|e| Error::Key(format!("cannot read standard input: {e}")))?;
        if read == 0 {
            return Err(Error::Key(format!("standard input ended before line {number} of the paper key")));
        }
        if paper::is_blank(&line) {
            continue;
        }
        // An age identity line is taken whole; anything else is a paper line, re-asked if wrong.
        if number == 1 && line.trim_start().get(..4).is_some_and(|p| p.eq_ignore_ascii_case("AGE-")) {
            return Ok(line);
        }
        match paper::check_line(number, &line) {
            Ok(()) => {
                text.push_str(&line);
                if !line.ends_with('\n') {
                    text.push('\n');
                }
                number += 1;
            }
            Err(e) => say(prompt, &format!("{e}. Type line {number} again.\n")),
        }
        line.zeroize();
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed_key() -> (Zeroizing<[u8; 32]>, Vec<String>) {
        let secret = Zeroizing::new([7u8; 32]);
        let key = paper::PaperKey::encode(&secret);
        let lines = key.to_text().lines().map(str::to_string).collect();
        (secret, lines)
    }

    #[test]
    fn a_mistyped_line_is_named_and_asked_again_then_the_key_reads() {
        let (secret, lines) = typed_key();
        // Line 2 first with a typo in its third group, then right; blank lines between.
        let mut typo: Vec<char> = lines[1].chars().collect();
        typo[11] = if typo[11] == '7' { '8' } else { '7' };
        let typo: String = typo.into_iter().collect();
        let typed = format!("{}\n\n{}\n{}\n{}\n", lines[0].to_lowercase(), typo, lines[1], lines[2]);
        let mut prompts = Vec::new();
        let text = prompt_lines(&mut typed.as_bytes(), &mut prompts).unwrap();
        let prompts = String::from_utf8(prompts).unwrap();
        assert!(
            prompts.contains(
                "line 2, group 3 does not match its checksum: check it against the paper. Type line 2 again."
            ),
            "{prompts}"
        );
        // Asked after line 1, again after the blank line, and again after the typo.
        assert_eq!(prompts.matches("line 2 of 3: ").count(), 3, "{prompts}");
        for line in &lines {
            assert!(!prompts.contains(&line[..4]), "the prompt repeated what was typed: {prompts}");
        }
        assert_eq!(*paper::decode(&text).unwrap(), *secret);
    }

    #[test]
    fn an_age_line_is_taken_as_it_is() {
        let id = arka_proto::RecoveryIdentities::generate();
        let file = id.to_file_text();
        let age_line = file.lines().find(|l| l.starts_with("AGE-")).unwrap();
        let text = prompt_lines(&mut format!("{age_line}\n").as_bytes(), &mut Vec::new()).unwrap();
        assert_eq!(arka_proto::RecoveryIdentities::parse(&text).unwrap().recipients(), id.recipients());
    }

    #[test]
    fn input_that_ends_early_says_which_line_was_missing() {
        let (_, lines) = typed_key();
        let e = prompt_lines(&mut format!("{}\n", lines[0]).as_bytes(), &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("before line 2 of the paper key"), "{e}");
        assert_eq!(e.exit_code(), 12);
    }
}
