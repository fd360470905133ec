//! What a failed dump command is allowed to say outside the machine: its exit status and
//! the last line it wrote to stderr, with anything that looks like a path or a file name
//! replaced by [`PLACEHOLDER`]. A dump's stderr can name a patient's file
//! (`cannot open /srv/pacjenci/Kowalski_Jan.dcm`), and the failure text travels to the
//! log, `/status`, the webhook, e-mail and the fleet dashboard.
//!
//! The rules err on the side of removing too much: a host name like `db.example.com`
//! looks like a file name and is replaced too. The full text is kept only in the local
//! debug log the admin may turn on (`dump_debug_log`).

/// What a path or file name is replaced with.
pub const PLACEHOLDER: &str = "<path>";

/// The longest line kept, in characters (after scrubbing).
const MAX_CHARS: usize = 240;

/// Words with a slash that are not paths.
const NOT_PATHS: &[&str] = &["i/o", "n/a", "and/or", "tcp/ip", "read/write", "r/w", "s/mime"];

/// Quote pairs that may wrap a path with spaces.
const QUOTES: &[(char, char)] = &[('"', '"'), ('\'', '\''), ('`', '`'), ('“', '”'), ('„', '”'), ('«', '»'), ('‘', '’')];

/// The last non-empty line of `stderr`, scrubbed of paths and cut to a sane length;
/// `None` when it wrote nothing.
pub fn last_line(stderr: &str) -> Option<String> {
    let line = stderr.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    let mut out = scrub(line);
    if out.chars().count() > MAX_CHARS {
        out = out.chars().take(MAX_CHARS).collect::<String>() + "…";
    }
    Some(out)
}

/// `line` with every quoted path, path-like word or file name replaced by [`PLACEHOLDER`].
/// Control characters become spaces (a line must not fake a second log line).
pub fn scrub(line: &str) -> String {
    let line: String = line.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let unquoted = scrub_quoted(&line);
    scrub_words(&unquoted)
}

/// Replaces the inside of quotes that holds a path or a file name, keeping the quotes.
fn scrub_quoted(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let opens = i == 0 || chars[i - 1].is_whitespace() || "([{=:,".contains(chars[i - 1]);
        let pair = QUOTES.iter().find(|(open, _)| *open == c).filter(|_| opens);
        if let Some(&(_, close)) = pair {
            if let Some(len) = chars[i + 1..].iter().position(|&x| x == close) {
                let inner: String = chars[i + 1..i + 1 + len].iter().collect();
                out.push(c);
                if inner.split_whitespace().any(|w| path_like(w) || file_like(w)) {
                    out.push_str(PLACEHOLDER);
                } else {
                    out.push_str(&inner);
                }
                out.push(close);
                i += len + 2;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Replaces path-like words; a run of words between two path-like words, and capitalised
/// words right after one (`/srv/Nowak Anna: …`), are taken as part of a path with spaces.
fn scrub_words(line: &str) -> String {
    let words: Vec<&str> = line.split(' ').collect();
    let is_path: Vec<bool> = words.iter().map(|w| path_like(core(w)) || file_like(core(w))).collect();
    let last_path = is_path.iter().rposition(|&p| p);
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        if !is_path[i] {
            out.push(words[i].to_string());
            i += 1;
            continue;
        }
        // The run: to the last path-like word with no path-ending word (`x:`) between.
        let mut end = i;
        let mut j = i;
        while j < words.len() && !ends_path(words[j]) && Some(j) < last_path {
            j += 1;
            if is_path[j] {
                end = j;
            }
        }
        // Then capitalised name parts, up to one ending the path.
        while !ends_path(words[end])
            && words.get(end + 1).is_some_and(|w| w.chars().next().is_some_and(char::is_uppercase))
        {
            end += 1;
        }
        let (lead, _) = split_edges(words[i]);
        let (_, trail) = split_edges(words[end]);
        out.push(format!("{lead}{PLACEHOLDER}{trail}"));
        i = end + 1;
    }
    out.join(" ")
}

/// A word ends a path when punctuation follows it: `/srv/x:`, `file.dcm,`.
fn ends_path(word: &str) -> bool {
    word.ends_with([':', ',', ';', ')', ']', '}'])
}

/// The word without the punctuation around it.
fn core(word: &str) -> &str {
    let (lead, trail) = split_edges(word);
    &word[lead.len()..word.len() - trail.len()]
}

/// The leading and trailing punctuation of a word (quotes, brackets, `:`, `,`, `.`).
fn split_edges(word: &str) -> (&str, &str) {
    const EDGE: &[char] = &['"', '\'', '`', '(', ')', '[', ']', '{', '}', '<', '>', ':', ',', ';', '.', '!', '?'];
    let start = word.len() - word.trim_start_matches(|c| EDGE.contains(&c) && c != '.').len();
    let rest = &word[start..];
    // A path may start with `.` (`./x`, `../x`) but not end with `:` unless it is `C:`.
    let trimmed = rest.trim_end_matches(EDGE);
    let end = start + trimmed.len();
    (&word[..start], &word[end..])
}

/// A word holding a directory separator, or a Windows drive, UNC or home path.
fn path_like(word: &str) -> bool {
    if word.is_empty() || NOT_PATHS.contains(&word.to_lowercase().as_str()) {
        return false;
    }
    let b = word.as_bytes();
    let drive = b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' && (b.len() == 2 || b"\\/".contains(&b[2]));
    drive || word.contains('/') || word.contains('\\') || word.starts_with('~')
}

/// A word that looks like a file name: a name, a dot, and a short extension with a letter
/// (`Kowalski_Jan.dcm`, `scan.JPG`, `1.dcm`); not a number (`1.5`).
fn file_like(word: &str) -> bool {
    let Some((stem, ext)) = word.rsplit_once('.') else { return false };
    let stem_ok = stem.chars().any(char::is_alphanumeric);
    let ext_ok = (1..=6).contains(&ext.chars().count())
        && ext.chars().all(char::is_alphanumeric)
        && ext.chars().any(char::is_alphabetic);
    stem_ok && ext_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(line: &str, secrets: &[&str]) -> String {
        let out = scrub(line);
        for s in secrets {
            assert!(!out.contains(s), "{s:?} survived in {out:?} (from {line:?})");
        }
        out
    }

    #[test]
    fn unix_paths_and_polish_names_are_removed() {
        let out = clean(
            "cat: /srv/pacjenci/Kowalski_Jan/CBCT_Źdźbło.dcm: No such file or directory",
            &["pacjenci", "Kowalski", "Źdźbło"],
        );
        assert_eq!(out, "cat: <path>: No such file or directory");
        let out = clean("nie można otworzyć ./pacjenci/Łukasz Żółć.dcm", &["Łukasz", "Żółć", "pacjenci"]);
        assert_eq!(out, "nie można otworzyć <path>");
    }

    #[test]
    fn windows_and_unc_paths_are_removed() {
        let out = clean(
            r"gbak: ERROR: cannot open C:\Pacjenci\Nowak Anna\rtg.dcm (I/O error)",
            &["Pacjenci", "Nowak", "rtg"],
        );
        assert_eq!(out, "gbak: ERROR: cannot open <path> (I/O error)");
        let out = clean(r"Access is denied: \\nas\share\Wiśniewska.jpg", &["nas", "Wiśniewska"]);
        assert_eq!(out, "Access is denied: <path>");
        assert_eq!(clean("open D:/dane/x.bak failed", &["dane"]), "open <path> failed");
    }

    #[test]
    fn quoted_paths_with_spaces_are_removed_whole() {
        let out = clean(
            r#"pg_dump: error: could not open file "/srv/dane pacjentów/Kowalski Jan.sql" for writing: Permission denied"#,
            &["pacjentów", "Kowalski", "Jan"],
        );
        assert_eq!(out, r#"pg_dump: error: could not open file "<path>" for writing: Permission denied"#);
        let out = clean("tar: 'Nowak Anna Maria.dcm': Cannot stat", &["Nowak", "Anna", "Maria"]);
        assert_eq!(out, "tar: '<path>': Cannot stat");
        let out = clean("nie znaleziono „C:\\Zdjęcia\\Dąbrowski Piotr.jpg”", &["Zdjęcia", "Dąbrowski", "Piotr"]);
        assert_eq!(out, "nie znaleziono „<path>”");
    }

    #[test]
    fn an_unquoted_path_with_spaces_is_removed_to_its_end() {
        let out = clean("cannot open /srv/Nowak Anna Maria/scan 1.dcm: denied", &["Nowak", "Anna", "Maria", "scan"]);
        assert_eq!(out, "cannot open <path>: denied");
        let out = clean("cannot open /srv/pacjenci/Kowalski Jan: gone", &["Kowalski", "Jan"]);
        assert_eq!(out, "cannot open <path>: gone");
    }

    #[test]
    fn bare_file_names_are_removed_but_ordinary_words_kept() {
        let out = clean("error reading Kowalski_Jan.dcm at offset 12", &["Kowalski"]);
        assert_eq!(out, "error reading <path> at offset 12");
        let plain = "mysqldump: Got error: 1045: Access denied for user 'root'@'localhost' (using password: YES)";
        assert_eq!(scrub(plain), plain);
        assert_eq!(scrub("version 1.5 failed after 2.0 s (I/O error)."), "version 1.5 failed after 2.0 s (I/O error).");
    }

    #[test]
    fn the_last_line_is_scrubbed_and_bounded() {
        let stderr = "starting\n/srv/a/Kowalski.dcm: read\n\nfatal: cannot open /srv/pacjenci/Nowak.dcm\n\n";
        assert_eq!(last_line(stderr).unwrap(), "fatal: cannot open <path>");
        assert_eq!(last_line(" \n\n"), None);
        let long = format!("error {}", "x ".repeat(400));
        assert!(last_line(&long).unwrap().chars().count() <= MAX_CHARS + 1);
        assert!(!scrub("a\u{1b}[31mb\rc").contains(['\u{1b}', '\r']));
    }

    proptest::proptest! {
        /// Any text scrubs without panicking, and a path in it, whatever its (Unicode)
        /// segments, does not survive.
        #[test]
        fn a_path_never_survives_whatever_surrounds_it(
            before in "[0-9 :]{0,20}",
            segments in proptest::collection::vec("[A-Za-zĄąĆćĘęŁłŃńÓóŚśŹźŻż_]{3,12}", 1..4),
            after in "(: [0-9 ]{0,20})?",
            junk in "\\PC{0,60}",
        ) {
            let _ = scrub(&junk);
            let path = format!("/srv/{}.dcm", segments.join("/"));
            let line = format!("{before} {path}{after}");
            let out = scrub(&line);
            for seg in &segments {
                proptest::prop_assert!(!out.contains(seg.as_str()), "{seg:?} survived in {out:?} (from {line:?})");
            }
        }
    }
}
