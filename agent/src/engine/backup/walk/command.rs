//! A command source: the command's standard output streamed through the pipeline as one
//! file. Its stderr never leaves this module whole: a failure says the exit status and
//! the last line with paths removed ([`scrub`](super::super::scrub)); the full text goes
//! only to the admin's local debug log, when one is given.

use std::io::{Read, Write};
use std::path::Path;

use arka_proto::{BlobId, Node, NodeKind};

use super::{FileError, Walker};
use crate::engine::backup::scrub;
use crate::error::{Error, Result};
use crate::platform::time_to_ns;

/// How much of a command's stderr is kept (its end): enough for a debug log, bounded
/// however much a command writes.
const STDERR_KEPT: usize = 64 * 1024;

/// The debug log is moved to `<name>.1` once it grows past this.
const DEBUG_LOG_MAX: u64 = 8 * 1024 * 1024;

impl Walker {
    /// Backs up a command's standard output as one file named `name`. The command's exit
    /// status decides: anything but success (including death by a signal) is an error and
    /// no snapshot is written. `debug_log`, if given, receives the command's full stderr
    /// (the error carries only its scrubbed last line).
    pub fn backup_command(&mut self, command: &str, name: &str, debug_log: Option<&Path>) -> Result<(BlobId, BlobId)> {
        let failed = |reason: String| Error::CommandFailed { command: command.into(), reason };
        let mut child = shell(command)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| failed(format!("could not start it: {e}")))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let stderr_tail = std::thread::spawn(move || tail(stderr));
        let streamed = self.store_stream(stdout, false);
        if streamed.is_err() {
            let _ = child.kill();
        }
        let status = child.wait().map_err(|e| failed(e.to_string()))?;
        let stderr = stderr_tail.join().unwrap_or_default();
        if let Some(log) = debug_log.filter(|_| !stderr.trim().is_empty()) {
            // The debug log is a convenience: failing to write it must not fail the backup.
            if let Err(e) = append_debug_log(log, name, &status, &stderr) {
                tracing::warn!("cannot write the dump debug log {}: {e}", log.display());
            }
        }
        let (listing, size) = match streamed {
            Ok(v) => v,
            Err(FileError::Fatal(e)) => return Err(e),
            Err(FileError::Unreadable(e)) => return Err(failed(format!("reading its output failed: {e}"))),
        };
        if !status.success() {
            return Err(failed(failure(&status, &stderr, debug_log.is_some())));
        }
        let node = Node {
            name: name.as_bytes().to_vec(),
            kind: NodeKind::File,
            mode: Some(0o600),
            mtime_ns: time_to_ns(std::time::SystemTime::now()),
            uid: None,
            gid: None,
            attributes: None,
            size,
            content: listing.content,
            lists: listing.lists,
            subtree: None,
            target: None,
            lost: false,
        };
        self.stats.files = 1;
        self.stats.bytes = size;
        self.store_tree(vec![node], Vec::new())
    }
}

/// What a failed command's error says: its exit status and its last stderr line with
/// paths removed, and where the full text is (or how to get it).
fn failure(status: &std::process::ExitStatus, stderr: &str, logged: bool) -> String {
    let how = match status.code() {
        Some(code) => format!("it exited with status {code}"),
        None => "it was killed by a signal".to_string(),
    };
    let last = match scrub::last_line(stderr) {
        Some(line) => format!("; its last line (paths removed): {line}"),
        None => return how,
    };
    let more = if logged {
        "; the full text is in the dump debug log"
    } else {
        "; set dump_debug_log = true in agent.toml to keep the full text locally, or run the command by hand"
    };
    format!("{how}{last}{more}")
}

/// The last [`STDERR_KEPT`] bytes a reader gives, as text.
fn tail(mut r: impl Read) -> String {
    let mut kept: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * STDERR_KEPT {
                    kept.drain(..kept.len() - STDERR_KEPT);
                }
            }
        }
    }
    let start = kept.len().saturating_sub(STDERR_KEPT);
    String::from_utf8_lossy(&kept[start..]).into_owned()
}

/// Appends a command's stderr to the debug log, which only its owner may read.
fn append_debug_log(path: &Path, name: &str, status: &std::process::ExitStatus, stderr: &str) -> std::io::Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() > DEBUG_LOG_MAX) {
        let mut old = path.as_os_str().to_owned();
        old.push(".1");
        std::fs::rename(path, old)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path)?;
    // An existing file keeps its mode on open: make sure it is private too.
    #[cfg(unix)]
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    write_entry(&mut f, name, status, stderr)
}

fn write_entry(
    f: &mut std::fs::File,
    name: &str,
    status: &std::process::ExitStatus,
    stderr: &str,
) -> std::io::Result<()> {
    let now = jiff::Timestamp::now();
    writeln!(f, "=== {now} dump {name:?}: {status} ===\n{}\n", stderr.trim_end())?;
    f.sync_data()
}

#[cfg(unix)]
fn shell(command: &str) -> std::process::Command {
    let mut c = std::process::Command::new("/bin/sh");
    c.arg("-c").arg(command);
    c
}

#[cfg(windows)]
fn shell(command: &str) -> std::process::Command {
    use std::os::windows::process::CommandExt;
    // Passed verbatim: `arg` would escape quotes MSVC-style (\"), which cmd does not
    // understand. /S makes cmd strip exactly the outer pair of quotes we add.
    let mut c = std::process::Command::new("cmd");
    c.raw_arg(format!("/S /C \"{command}\""));
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stderr_tail_is_bounded_and_keeps_the_end() {
        let mut text = "x".repeat(5 * STDERR_KEPT);
        text.push_str("\nfatal: the end");
        let kept = tail(std::io::Cursor::new(text.into_bytes()));
        assert_eq!(kept.len(), STDERR_KEPT);
        assert!(kept.ends_with("fatal: the end"));
    }

    #[cfg(unix)]
    #[test]
    fn the_debug_log_keeps_the_full_text_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        use std::os::unix::process::ExitStatusExt;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("dump-debug.log");
        let status = std::process::ExitStatus::from_raw(2 << 8);
        append_debug_log(&log, "db", &status, "cannot open /srv/pacjenci/Kowalski.dcm\n").unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("/srv/pacjenci/Kowalski.dcm") && text.contains("\"db\""), "{text}");
        assert_eq!(std::fs::metadata(&log).unwrap().permissions().mode() & 0o777, 0o600);
        let reason = failure(&status, "cannot open /srv/pacjenci/Kowalski.dcm\n", true);
        assert!(!reason.contains("Kowalski") && reason.contains("status 2"), "{reason}");
    }
}
