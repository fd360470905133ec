//! `arka keygen --paper` and `--paper-html FILE`: the new recovery identity in a form a
//! person can print, keep in a safe and type back years later with `--identity -`: the
//! paper key's lines (proto's `paper` module) and a QR code of the age identity line.

use std::path::Path;

use arka_proto::paper::PaperKey;
use arka_proto::RecoveryIdentities;
use qrcode::render::{svg, unicode};
use qrcode::{EcLevel, QrCode};
use zeroize::Zeroizing;

use super::paper_sheet::{self, Sheet};
use crate::error::{Error, Result};
use crate::repo::keys::write_secret_file;

/// One identity's paper forms.
pub(super) struct Paper {
    key: PaperKey,
    /// `AGE-SECRET-KEY-1…`, what the QR code holds.
    age_line: Zeroizing<String>,
    recipient: String,
}

impl Paper {
    pub(super) fn of(id: &RecoveryIdentities) -> Self {
        let file = Zeroizing::new(id.to_file_text());
        let age_line = file.lines().find(|l| l.starts_with("AGE-SECRET-KEY-")).expect("an identity line").to_string();
        Self {
            key: PaperKey::encode(&id.secrets()[0]),
            age_line: Zeroizing::new(age_line),
            recipient: id.recipients().remove(0),
        }
    }

    /// The lines as `--paper` prints them: a `#` header (read back as a comment, so the
    /// whole output can be given to `--identity -`), the lines, and the QR code as `#` lines.
    pub(super) fn text(&self) -> Zeroizing<String> {
        let mut out = format!(
            "# arka paper key (format {}) for the recovery identity {}\n\
             # Type the lines back with --identity -, each with its last three characters (its checksum).\n",
            arka_proto::paper::FORMAT,
            self.recipient
        );
        out.push_str(&self.key.to_text());
        out.push_str("#\n# The same key as a QR code (the AGE-SECRET-KEY-1… line):\n");
        for row in self.qr().render::<unicode::Dense1x2>().quiet_zone(true).build().lines() {
            out.push_str("# ");
            out.push_str(row);
            out.push('\n');
        }
        Zeroizing::new(out)
    }

    /// The lines alone, for `--json`.
    pub(super) fn lines(&self) -> Vec<String> {
        self.key.to_text().lines().map(str::to_string).collect()
    }

    /// Writes the printable sheet to `path`, readable by its owner only.
    pub(super) fn write_sheet(&self, path: &Path, repo_id: Option<&str>) -> Result<()> {
        let qr_svg = self
            .qr()
            .render::<svg::Color>()
            .quiet_zone(true)
            .build()
            // An XML declaration has no place inside an HTML page.
            .split_once("?>")
            .map_or_else(String::new, |(_, svg)| svg.to_string());
        let made = jiff::Zoned::now().strftime("%Y-%m-%d").to_string();
        let lines = self.key.lines();
        let html = Zeroizing::new(paper_sheet::render(&Sheet {
            lines: &lines,
            age_line: &self.age_line,
            qr_svg: &qr_svg,
            recipient: &self.recipient,
            made: &made,
            repo_id,
        }));
        write_secret_file(path, html.as_bytes())
    }

    /// The QR code of the age line, with a quarter of it recoverable (a worn or folded sheet).
    fn qr(&self) -> QrCode {
        QrCode::with_error_correction_level(self.age_line.as_bytes(), EcLevel::Q)
            .expect("a 74-character identity fits in a QR code")
    }
}

/// `--repo-id`: the repository ID as `arka init` printed it (hex, all of it or the first 8).
pub(super) fn repo_id_arg(given: &str) -> std::result::Result<String, String> {
    let id = given.trim().to_ascii_lowercase();
    if (8..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id)
    } else {
        Err("the repository ID is the hex `arka init` printed (its first 8 characters at least)".into())
    }
}

/// Refuses an existing file before a key is made, so that no key is half written.
pub(super) fn refuse_existing(paths: &[Option<&Path>]) -> Result<()> {
    for path in paths.iter().flatten() {
        if path.exists() {
            return Err(Error::Usage(format!("{} already exists; refusing to overwrite a key", path.display())));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_paper_reads_back_whole_as_the_same_identity() {
        let id = RecoveryIdentities::generate();
        let paper = Paper::of(&id);
        let text = paper.text();
        assert!(text.contains(&id.recipients()[0]));
        assert!(text.contains('█') || text.contains('▀'), "a QR code in half blocks:\n{}", *text);
        let secret = arka_proto::paper::decode(&text).expect("the whole output reads back");
        assert_eq!(RecoveryIdentities::from_secret(&secret).unwrap().recipients(), id.recipients());
        assert_eq!(paper.lines().len(), arka_proto::paper::LINES);
        assert!(id.to_file_text().contains(paper.age_line.as_str()) && paper.age_line.starts_with("AGE-SECRET-KEY-1"));
    }

    #[test]
    fn the_sheet_is_private_and_holds_an_inline_svg() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.html");
        let paper = Paper::of(&RecoveryIdentities::generate());
        paper.write_sheet(&path, Some("3f9a12c4")).unwrap();
        let html = std::fs::read_to_string(&path).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<svg") && !html.contains("<?xml"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let e = paper.write_sheet(&path, None).unwrap_err();
        assert!(e.to_string().contains("refusing to overwrite"), "{e}");
    }

    #[test]
    fn a_repository_id_must_be_hex() {
        assert_eq!(repo_id_arg(" 3F9A12C4 ").unwrap(), "3f9a12c4");
        assert!(repo_id_arg("clinic").is_err());
        assert!(repo_id_arg("3f9a").is_err());
    }
}
