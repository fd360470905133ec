//! Headless Chromium for the page tests: a DOM dump, a screenshot of a window size, and
//! checks on the PNG. Needs `/usr/bin/chromium` (or `$CHROMIUM`):
//! `scripts/install-test-deps.sh` installs it.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Generous: the first start of Chromium on a loaded 2-core machine takes seconds.
const BROWSER_DEADLINE: Duration = Duration::from_secs(120);

/// The headless browser, with a fresh profile per run.
pub struct Chromium {
    bin: PathBuf,
}

impl Chromium {
    pub fn find() -> Self {
        let bin = std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
        assert!(
            bin.exists(),
            "headless Chromium is needed for the page tests and {} does not exist: \
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

    pub fn dump_dom(&self, url: &str) -> String {
        let (stdout, stderr) = self.run(&["--dump-dom".as_ref(), url.as_ref()]);
        let dom = String::from_utf8(stdout).expect("the DOM is UTF-8");
        assert!(dom.contains("</html>"), "chromium printed no page for {url}:\n{dom}\n--- stderr:\n{stderr}");
        dom
    }

    /// A PNG of the page in a window of `size` pixels.
    pub fn screenshot(&self, url: &str, size: (u32, u32)) -> Vec<u8> {
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
pub fn assert_png(png: &[u8], size: (u32, u32)) {
    assert!(png.len() > 8 + 25, "screenshot is only {} bytes", png.len());
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&png[12..16], b"IHDR", "PNG without IHDR first");
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    assert_eq!((be(16), be(20)), size, "screenshot dimensions");
    // A blank or single-colour page of this size compresses to a few kilobytes; a verdict,
    // cards and text make tens.
    assert!(png.len() > 15_000, "screenshot is suspiciously small ({} bytes): blank page?", png.len());
}

/// Copies a screenshot to `target/NAME` for a person to look at.
pub fn keep(png: &[u8], name: &str) {
    let dest = target_dir().join(name);
    fs::write(&dest, png).unwrap_or_else(|e| panic!("writing {}: {e}", dest.display()));
    eprintln!("screenshot: {}", dest.display());
}

/// `target/` (page tests run as `target/<profile>/deps/<test>-…`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("test executables live in target/<profile>/deps")
        .to_path_buf()
}
