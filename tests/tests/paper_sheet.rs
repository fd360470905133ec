//! The printable paper-key sheet as a person sees it: `arka keygen --paper-html` writes it
//! and the real headless Chromium opens the file, once for its DOM and once for a
//! screenshot (copied to `target/paper-sheet.png` for a person to look at).
//!
//! Needs `/usr/bin/chromium` (or `$CHROMIUM`): `scripts/install-test-deps.sh` installs it.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;

use arka_tests::{os_args, Fixture};

#[path = "support/chromium.rs"]
mod chromium;
use chromium::{assert_png, keep, Chromium};

#[test]
fn the_paper_sheet_shows_the_key_its_qr_code_and_where_to_write_in_headless_chromium() {
    let fx = Fixture::new();
    let sheet = fx.path("owner-paper.html");
    let made = fx.arka(os_args!["keygen", "--paper", "--paper-html", sheet, "--repo-id", "3F9A12C4"]).ok();
    let printed = made.stdout_text();
    let lines: Vec<&str> = printed.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).collect();
    let recipient = made.stderr.trim().strip_prefix("public recipient: ").expect("the recipient on stderr");

    assert_eq!(std::fs::metadata(&sheet).unwrap().permissions().mode() & 0o777, 0o600, "the sheet is a secret");
    // The SVG namespace is a name, not something fetched.
    let html = std::fs::read_to_string(&sheet).unwrap().replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for external in ["<script", "<link", "src=", "href=", "url(", "@import", "http://", "https://"] {
        assert!(!html.contains(external), "the sheet loads or runs something ({external})");
    }

    let browser = Chromium::find();
    let url = format!("file://{}", sheet.display());
    let dom = browser.dump_dom(&url);
    for line in &lines {
        // Every group and checksum of the printed lines, each in its own cell.
        for group in line.split_whitespace() {
            assert!(dom.contains(&format!(">{group}</td>")), "the sheet lacks the group {group:?}:\n{dom}");
        }
    }
    for needle in [
        recipient,
        "3f9a12c4",
        "AGE-SECRET-KEY-1",
        "Copies of this key are kept at",
        "Typing it back",
        "--identity -",
        "<svg",
    ] {
        assert!(dom.contains(needle), "the rendered sheet lacks {needle:?}:\n{dom}");
    }
    assert_eq!(dom.matches("class=\"write\"").count(), 3, "three lines to write where copies are kept");

    // A4 at 96 dpi.
    let shot = browser.screenshot(&url, (794, 1123));
    assert_png(&shot, (794, 1123));
    keep(&shot, "paper-sheet.png");
}
