//! The command lines of the docs' ```sh blocks, as a reader would type them, for the tests
//! that run them (`doc_examples.rs` runs every `arka` line, `disaster.rs` plays the
//! disaster recovery runbook): continuation lines joined, split into shell words, with
//! the comment and the reader of a pipe (`| psql …`) set apart.

/// One command line of a ```sh block.
#[derive(Clone, Debug)]
pub struct Example {
    /// `docs/OPERATIONS.md:165`, for messages.
    pub place: String,
    /// The `## ` heading it is under ("## 7. Disaster recovery runbook …").
    pub section: String,
    /// The line as written (continuations joined), comment included.
    pub text: String,
    /// Its shell words, quotes removed, up to a comment or a pipe.
    pub words: Vec<String>,
    /// What follows an unquoted `|`, comment removed.
    pub piped_into: Option<String>,
}

impl Example {
    /// Whether it runs arka.
    pub fn is_arka(&self) -> bool {
        self.words.first().is_some_and(|w| w == "arka")
    }
}

/// `word` with every placeholder of `map` replaced in one pass (a replacement is never
/// searched again); at each position the first entry of `map` that matches wins.
pub fn replace_placeholders(word: &str, map: &[(&str, String)]) -> String {
    let mut out = String::new();
    let mut rest = word;
    'scan: while let Some(c) = rest.chars().next() {
        for (from, to) in map {
            if let Some(after) = rest.strip_prefix(from) {
                out.push_str(to);
                rest = after;
                continue 'scan;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Every command line of every ```sh block of `file` (relative to the workspace root).
pub fn sh_examples(file: &str) -> Vec<Example> {
    let path = crate::workspace_root().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    examples_in(file, &text)
}

fn examples_in(file: &str, text: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let (mut in_sh, mut section) = (false, String::new());
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("```") {
            in_sh = !in_sh && line.trim() == "```sh";
            continue;
        }
        if !in_sh {
            if line.starts_with("## ") {
                section = line.to_string();
            }
            continue;
        }
        let (start, mut joined) = pending.take().unwrap_or((i + 1, String::new()));
        match line.strip_suffix('\\') {
            Some(part) => {
                joined.push_str(part);
                pending = Some((start, joined));
            }
            None => {
                joined.push_str(line);
                let trimmed = joined.trim();
                if trimmed.is_empty() || trimmed.starts_with('#') {
                    continue;
                }
                let (words, piped_into) = shell_words(trimmed);
                out.push(Example {
                    place: format!("{file}:{start}"),
                    section: section.clone(),
                    text: trimmed.to_string(),
                    words,
                    piped_into,
                });
            }
        }
    }
    out
}

/// Splits a command line into words (single and double quotes, backslash escapes), up to
/// an unquoted `#` starting a word (a comment) or an unquoted `|` (the rest is returned,
/// without its comment, as the pipe's reader).
pub fn shell_words(line: &str) -> (Vec<String>, Option<String>) {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.char_indices().peekable();
    let (mut single, mut double) = (false, false);
    while let Some((i, c)) = chars.next() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '\\' if !single => {
                if let Some((_, next)) = chars.next() {
                    word.get_or_insert_with(String::new).push(next);
                }
                continue;
            }
            c if single || double => word.get_or_insert_with(String::new).push(c),
            '#' if word.is_none() => break,
            '|' => {
                words.extend(word.take());
                let rest = &line[i + 1..];
                let reader = rest.split(" #").next().unwrap_or(rest).trim().to_string();
                return (words, Some(reader));
            }
            c if c.is_whitespace() => words.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
        // A quote opens a word even if it stays empty ("").
        if (c == '\'' || c == '"') && word.is_none() {
            word = Some(String::new());
        }
    }
    words.extend(word);
    (words, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_replaced_once() {
        let map = [("/etc/arka/agent.key", "/x/etc/agent.key".to_string()), ("agent.key", "/x/etc/agent.key".into())];
        assert_eq!(replace_placeholders("/etc/arka/agent.key", &map), "/x/etc/agent.key");
        assert_eq!(replace_placeholders("k=agent.key", &map), "k=/x/etc/agent.key");
    }

    #[test]
    fn lines_are_split_as_a_shell_would() {
        let (w, p) = shell_words(r#"arka restore --at "2026-05-01 14:00" --path 'a b' x\ y   # comment"#);
        assert_eq!(w, ["arka", "restore", "--at", "2026-05-01 14:00", "--path", "a b", "x y"]);
        assert_eq!(p, None);
        let (w, p) = shell_words("arka dump --source db latest clinic.sql | psql -d x  # load it");
        assert_eq!(w, ["arka", "dump", "--source", "db", "latest", "clinic.sql"]);
        assert_eq!(p.as_deref(), Some("psql -d x"));
        let (w, _) = shell_words(r#"psql -c "SELECT 1 # not a comment""#);
        assert_eq!(w, ["psql", "-c", "SELECT 1 # not a comment"]);
    }

    #[test]
    fn sh_blocks_are_found_with_their_section_and_continuations() {
        let text = "## 3. One\n```sh\narka a \\\n  --b c   # note\n# only a comment\n```\n```toml\nx = 1\n```\n\
                    ## 4. Two\n```sh\narka d\n```\n";
        let ex = examples_in("f.md", text);
        assert_eq!(ex.len(), 2);
        assert_eq!(ex[0].words, ["arka", "a", "--b", "c"]);
        assert_eq!(ex[0].place, "f.md:3");
        assert_eq!(ex[0].section, "## 3. One");
        assert_eq!(ex[1].section, "## 4. Two");
    }
}
