//! Where an error is: the line and section of a byte offset, and toml's own errors turned
//! into a [`Problem`] in words for a person.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

use super::Problem;

pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The tables of the document with their spans, to say which section a byte offset is in.
pub(super) struct Sections {
    /// `[header]` and `[[header]]` tables: a key belongs to the last one before it.
    headers: Vec<(usize, usize, String)>,
    /// Inline tables (`webhook = { … }`): a key belongs to the innermost one around it.
    inline: Vec<(Range<usize>, String)>,
    /// Every key's value span and name, for errors that point at a value.
    values: Vec<(Range<usize>, String)>,
}

impl Sections {
    pub(super) fn of(text: &str) -> Self {
        let mut s = Sections { headers: Vec::new(), inline: Vec::new(), values: Vec::new() };
        if let Ok(doc) = DeTable::parse(text) {
            s.walk(text, doc.get_ref(), "", 0);
        }
        s
    }

    fn walk(&mut self, text: &str, table: &DeTable<'_>, prefix: &str, depth: usize) {
        for (key, value) in table.iter() {
            let key: &str = key.get_ref();
            let path = if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") };
            self.values.push((value.span(), key.to_string()));
            match value.get_ref() {
                DeValue::Table(t) => self.table(text, t, value.span(), path, depth),
                DeValue::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let DeValue::Table(t) = item.get_ref() {
                            let label = match t.iter().find(|(k, _)| **k.get_ref() == *"name") {
                                Some((_, v)) => match v.get_ref() {
                                    DeValue::String(n) => format!("{path} {n:?}"),
                                    _ => format!("{path} #{}", i + 1),
                                },
                                None => format!("{path} #{}", i + 1),
                            };
                            self.table(text, t, item.span(), label, depth);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn table(&mut self, text: &str, t: &DeTable<'_>, span: Range<usize>, label: String, depth: usize) {
        if text.get(span.clone()).is_some_and(|s| s.starts_with('[')) {
            self.headers.push((span.start, depth, label.clone()));
        } else if text.get(span.clone()).is_some_and(|s| s.starts_with('{')) {
            self.inline.push((span, label.clone()));
        }
        self.walk(text, t, &label, depth + 1);
    }

    pub(super) fn at(&self, offset: usize) -> Option<String> {
        if let Some((_, label)) =
            self.inline.iter().filter(|(r, _)| r.contains(&offset)).min_by_key(|(r, _)| r.end - r.start)
        {
            return Some(label.clone());
        }
        self.headers
            .iter()
            .filter(|(start, ..)| *start <= offset)
            .max_by_key(|(start, depth, _)| (*start, *depth))
            .map(|(.., label)| label.clone())
    }

    /// The key whose value holds `offset`, innermost first.
    fn key_at(&self, offset: usize) -> Option<&str> {
        self.values
            .iter()
            .filter(|(r, _)| r.contains(&offset))
            .min_by_key(|(r, _)| r.end - r.start)
            .map(|(_, k)| k.as_str())
    }
}

/// Turns a toml/serde error into a problem at a line, in words for a person.
pub(super) fn from_toml_error(text: &str, e: &toml::de::Error) -> Problem {
    let span = e.span().unwrap_or(0..0);
    let sections = Sections::of(text);
    let msg = e.message().trim();
    let message = if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (key, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let valid: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let mut m = format!("unknown key {key:?}");
        let near = |v: &&&str| edit_distance(key, v) <= 2 || (key.len() >= 3 && v.starts_with(key));
        if let Some(near) = valid.iter().filter(near).min_by_key(|v| edit_distance(key, v)) {
            m += &format!("; did you mean {near:?}?");
        }
        if !valid.is_empty() {
            m += &format!(" (keys here: {})", valid.join(", "));
        }
        m
    } else if let Some(rest) = msg.strip_prefix("missing field `") {
        format!("missing key {:?}", rest.trim_end_matches('`'))
    } else if msg.starts_with("unknown variant") || msg.starts_with("invalid type") || msg.starts_with("invalid value")
    {
        let m = msg.replace('`', "\"").replace("variant", "value");
        match sections.key_at(span.start) {
            Some(key) => format!("{key}: {m}"),
            None => m,
        }
    } else {
        format!("not valid TOML: {msg}")
    };
    Problem { line: line_of(text, span.start), section: sections.at(span.start), message }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for j in 0..b.len() {
            let cur = row[j + 1];
            row[j + 1] = if ca == b[j] { prev } else { 1 + prev.min(row[j]).min(cur) };
            prev = cur;
        }
    }
    row[b.len()]
}
