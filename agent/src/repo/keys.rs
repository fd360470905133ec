//! Loading keys from files: the agent key, and recovery identities that may be
//! passphrase-protected (age scrypt), typed from a paper key, or given on standard input
//! (`--identity -`). Messages say which kind of key was expected.

use std::path::Path;

use arka_proto::crypto::{is_age_file, open_with_passphrase};
use arka_proto::{paper, AgentKey, RecoveryIdentities};

use crate::error::{Error, Result};

fn read_key_file(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Key(format!("cannot read the {what} file {}: {e}", path.display())))
}

pub fn load_agent_key(path: &Path) -> Result<AgentKey> {
    let bytes = read_key_file(path, "agent key")?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::Key(format!("{} is not an arka agent key file", path.display())))?;
    AgentKey::parse(&text).map_err(|e| Error::Key(format!("{}: {e}", path.display())))
}

/// `--identity -`: the recovery identity comes from standard input. No command reads
/// standard input for anything else (passphrase prompts read the terminal itself); one that
/// comes to must refuse `--identity -`.
pub const STDIN: &str = "-";

/// Loads recovery identities from a file, or from standard input if `path` is `-` (typed
/// line by line at a terminal, read whole from a pipe). The file or input may hold an age
/// identity file, a passphrase-protected one (which asks `passphrase` for its passphrase:
/// `ARKA_PASSPHRASE`, or a prompt on the terminal), or a paper key typed back.
pub fn load_identities(path: &Path, passphrase: impl FnOnce() -> Result<String>) -> Result<RecoveryIdentities> {
    if path.as_os_str() == STDIN {
        let bytes = super::key_input::read_stdin()?;
        return identities_from(&bytes, "the recovery identity on standard input", passphrase);
    }
    let bytes = zeroize::Zeroizing::new(read_key_file(path, "recovery identity")?);
    identities_from(&bytes, &path.display().to_string(), passphrase)
}

/// Parses what `load_identities` read; `name` says where it came from, for messages.
fn identities_from(
    bytes: &[u8],
    name: &str,
    passphrase: impl FnOnce() -> Result<String>,
) -> Result<RecoveryIdentities> {
    let plain = if is_age_file(bytes) {
        let pass = passphrase()?;
        zeroize::Zeroizing::new(open_with_passphrase(bytes, &pass).map_err(|e| Error::Key(format!("{name}: {e}")))?)
    } else {
        zeroize::Zeroizing::new(bytes.to_vec())
    };
    let text = std::str::from_utf8(&plain).map_err(|_| Error::Key(format!("{name} is not an age identity file")))?;
    if paper::looks_like_paper(text) {
        let secret = paper::decode(text).map_err(|e| Error::Key(format!("{name}: {e}")))?;
        return RecoveryIdentities::from_secret(&secret).map_err(|e| Error::Key(format!("{name}: {e}")));
    }
    RecoveryIdentities::parse(text).map_err(|e| Error::Key(format!("{name}: {e}")))
}

/// Writes a secret file readable by its owner only.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            Error::Usage(format!("{} already exists; refusing to overwrite a key", path.display()))
        }
        _ => Error::io(path, e),
    })?;
    std::io::Write::write_all(&mut f, contents).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_passphrase() -> Result<String> {
        panic!("no passphrase should be asked for")
    }

    #[test]
    fn a_paper_key_reads_as_its_identity_from_a_file() {
        let id = RecoveryIdentities::generate();
        let paper = paper::PaperKey::encode(&id.secrets()[0]);
        let typed = format!("# typed from the safe's copy\n{}", paper.to_text().to_lowercase().replace(' ', "-"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("typed.txt");
        std::fs::write(&file, typed).unwrap();
        assert_eq!(load_identities(&file, no_passphrase).unwrap().recipients(), id.recipients());
    }

    #[test]
    fn a_paper_typo_is_a_key_error_that_names_the_line_and_group_only() {
        let id = RecoveryIdentities::generate();
        let text = paper::PaperKey::encode(&id.secrets()[0]).to_text();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        // Group 4 of line 3 starts at character 15 (groups are separated by spaces).
        let wrong = if lines[2].as_bytes()[15] == b'Z' { "Y" } else { "Z" };
        lines[2].replace_range(15..16, wrong);
        let e = identities_from(lines.join("\n").as_bytes(), "typed", no_passphrase).err().unwrap();
        assert_eq!(e.exit_code(), 12);
        let msg = e.to_string();
        assert!(msg.contains("line 3, group 4 does not match its checksum"), "{msg}");
        for line in &lines {
            for group in line.split_whitespace() {
                assert!(!msg.contains(group), "{msg} repeats {group}");
            }
        }
    }

    #[test]
    fn other_files_keep_the_age_parsers_message() {
        let recipients = RecoveryIdentities::generate().recipients().join("\n");
        for (given, want) in [(recipients.as_str(), "not an age identity line"), ("", "no AGE-SECRET-KEY-1")] {
            let e = identities_from(given.as_bytes(), "f", no_passphrase).err().unwrap();
            assert!(e.to_string().contains(want), "{given:?}: {e}");
        }
    }

    #[test]
    fn an_agent_key_given_as_the_identity_is_still_explained() {
        let key = AgentKey::generate();
        let e = identities_from(key.to_file_text().as_bytes(), "agent.key", no_passphrase).err().unwrap();
        assert!(e.to_string().contains("this is an agent key, not a recovery identity"), "{e}");
    }
}
