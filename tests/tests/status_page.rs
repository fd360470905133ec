//! The agent's status page as a person sees it: the `status_demo` example serves a sample
//! report (the database dump five hours late, the offsite copy behind) and the real
//! headless Chromium loads it, once for its DOM and once for a screenshot. The screenshots
//! are copied to `target/status-page*.png` so a person can look at them.
//!
//! Needs `/usr/bin/chromium` (or `$CHROMIUM`): `scripts/install-test-deps.sh` installs it.
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[path = "support/chromium.rs"]
mod chromium;
use chromium::{assert_png, keep, Chromium};

const TOKEN: &str = "demo-t0ken";
#[test]
fn the_status_page_shows_a_late_source_in_headless_chromium() {
    let browser = Chromium::find();
    let demo = Demo::start(&["--token", TOKEN]);
    let page = format!("{}?token={TOKEN}", demo.url);

    let dom = browser.dump_dom(&page);
    for needle in [
        "Backups need attention",
        "clinic-db: last successful backup 5 hours ago (should be every hour)",
        "imaging",
        "clinic-db",
        "scanned-documents",
        "Backing up now",
        "offsite",
        "3 backups (1.6 GiB)",
        "s3://clinic-offsite/arka",
        "Protected",
        "on nas, offsite",
        "Last 30 days",
        "Stored per day",
        "Back up now",
        "Back up everything now",
        "Last restore test",
    ] {
        assert!(dom.contains(needle), "the rendered page lacks {needle:?}:\n{dom}");
    }
    assert!(!dom.contains("All backups are up to date"));
    assert!(!dom.contains("AKIAEXAMPLE") && !dom.contains("secret@"), "credentials on the page:\n{dom}");

    assert_eq!(dom.matches("<rect").count(), 3 * 30 + 30 + 30 + 20, "a 30-day strip per source, and bars:\n{dom}");
    let shot = browser.screenshot(&page, (1200, 1500));
    assert_png(&shot, (1200, 1500));
    keep(&shot, "status-page.png");
    let phone = browser.screenshot(&page, (390, 844));
    assert_png(&phone, (390, 844));
    keep(&phone, "status-page-phone.png");
}

#[test]
fn the_status_page_says_all_is_well_when_it_is() {
    let browser = Chromium::find();
    let demo = Demo::start(&["--healthy"]);
    let dom = browser.dump_dom(&demo.url);
    assert!(dom.contains("All backups are up to date"), "{dom}");
    assert!(!dom.contains("need attention"), "{dom}");
    let shot = browser.screenshot(&demo.url, (1200, 900));
    assert_png(&shot, (1200, 900));
    keep(&shot, "status-page-healthy.png");
}

#[test]
fn without_its_token_the_browser_sees_only_how_to_get_in() {
    let browser = Chromium::find();
    let demo = Demo::start(&["--token", TOKEN]);
    let dom = browser.dump_dom(&demo.url);
    assert!(dom.contains("needs its access token"), "{dom}");
    for secret in ["clinic-db", "imaging", "reception-pc"] {
        assert!(!dom.contains(secret), "{secret} shown without the token:\n{dom}");
    }
}

/// The `status_demo` example, running on a free loopback port; killed on drop.
struct Demo {
    child: Child,
    url: String,
}

impl Demo {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(demo_bin())
            .arg("127.0.0.1:0")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting status_demo");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let mut demo = Self { child, url: String::new() };
        demo.url = line
            .trim()
            .strip_prefix("status page: ")
            .unwrap_or_else(|| panic!("status_demo did not print its address (got {line:?})"))
            .to_string();
        demo
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `target/<profile>/examples/status_demo`, built with cargo for this test's profile when
/// missing or older than the sources, as `arka_tests::arka_bin` does for `arka`.
fn demo_bin() -> PathBuf {
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_build_at_a_time = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    arka_tests::cargo_artifact(
        "examples/status_demo",
        "arka-agent",
        &["--example", "status_demo"],
        &["agent/examples/status_demo.rs"],
    )
}
