//! The agent's status page as a person sees it: the `status_demo` example serves a sample
//! report (the database dump five hours late, the offsite copy behind) and the real
//! headless Chromium loads it, once for its DOM and once for a screenshot. The screenshots
//! are copied to `target/status-page*.png` so a person can look at them.
//!
//! Needs `/usr/bin/chromium` (or `$CHROMIUM`): `scripts/install-test-deps.sh` installs it.
#![cfg(unix)]

use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TOKEN: &str = "demo-t0ken";
/// Generous: the first start of Chromium on a loaded 2-core machine takes seconds.
const BROWSER_DEADLINE: Duration = Duration::from_secs(120);

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
    ] {
        assert!(dom.contains(needle), "the rendered page lacks {needle:?}:\n{dom}");
    }
    assert!(!dom.contains("All backups are up to date"));
    assert!(!dom.contains("AKIAEXAMPLE") && !dom.contains("secret@"), "credentials on the page:\n{dom}");

    let shot = browser.screenshot(&page, (1200, 900));
    assert_png(&shot, (1200, 900));
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

/// The headless browser, with a fresh profile per run.
struct Chromium {
    bin: PathBuf,
}

impl Chromium {
    fn find() -> Self {
        let bin = std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
        assert!(
            bin.exists(),
            "headless Chromium is needed for the status page test and {} does not exist: \
             run `bash scripts/install-test-deps.sh` (CI runs it first), or set $CHROMIUM",
            bin.display()
        );
        Self { bin }
    }

    fn run(&self, args: &[&OsStr]) -> (Vec<u8>, String) {
        let profile = tempfile::tempdir().expect("a temporary browser profile");
        let mut cmd = Command::new(&self.bin);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdin(Stdio::null());
        let out = output_within(cmd, BROWSER_DEADLINE);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "chromium failed ({}):\n{stderr}", out.status);
        (out.stdout, stderr)
    }

    fn dump_dom(&self, url: &str) -> String {
        let (stdout, stderr) = self.run(&["--dump-dom".as_ref(), url.as_ref()]);
        let dom = String::from_utf8(stdout).expect("the DOM is UTF-8");
        assert!(dom.contains("</html>"), "chromium printed no page for {url}:\n{dom}\n--- stderr:\n{stderr}");
        dom
    }

    /// A PNG of the page in a window of `size` pixels.
    fn screenshot(&self, url: &str, size: (u32, u32)) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let file = dir.path().join("page.png");
        let shot = format!("--screenshot={}", file.display());
        let window = format!("--window-size={},{}", size.0, size.1);
        let (_, stderr) = self.run(&[shot.as_ref(), window.as_ref(), url.as_ref()]);
        fs::read(&file).unwrap_or_else(|e| panic!("chromium wrote no screenshot ({e}):\n{stderr}"))
    }
}

/// Runs `cmd` to completion, killing it after `deadline`.
fn output_within(mut cmd: Command, deadline: Duration) -> std::process::Output {
    let what = format!("{cmd:?}");
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("starting chromium");
    let pid = child.id();
    let (done, finished) = mpsc::channel();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(deadline).is_err() {
            // Still running: end it by its own pid, so wait_with_output returns.
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    });
    let started = Instant::now();
    let out = child.wait_with_output().expect("waiting for chromium");
    let _ = done.send(());
    let _ = watchdog.join();
    assert!(started.elapsed() < deadline, "{what} did not finish within {deadline:?}");
    out
}

/// Checks that `png` is a PNG of `size` pixels with more in it than a blank page.
fn assert_png(png: &[u8], size: (u32, u32)) {
    assert!(png.len() > 8 + 25, "screenshot is only {} bytes", png.len());
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&png[12..16], b"IHDR", "PNG without IHDR first");
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    assert_eq!((be(16), be(20)), size, "screenshot dimensions");
    // A blank or single-colour page of this size compresses to a few kilobytes; the
    // verdict, cards and text make tens.
    assert!(png.len() > 15_000, "screenshot is suspiciously small ({} bytes): blank page?", png.len());
}

/// Copies a screenshot to `target/NAME` for a person to look at.
fn keep(png: &[u8], name: &str) {
    let dest = target_dir().join(name);
    fs::write(&dest, png).unwrap_or_else(|e| panic!("writing {}: {e}", dest.display()));
    eprintln!("screenshot: {}", dest.display());
}

/// `target/` (this test runs as `target/<profile>/deps/status_page-…`).
fn target_dir() -> PathBuf {
    profile_dir().parent().expect("target/<profile> has a parent").to_path_buf()
}

fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.parent().and_then(Path::parent).expect("test executables live in target/<profile>/deps").to_path_buf()
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
