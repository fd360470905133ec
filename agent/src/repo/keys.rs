//! Loading keys from files: the agent key, and recovery identities that may be
//! passphrase-protected (age scrypt). Messages say which kind of key was expected.

use std::path::Path;

use arka_proto::crypto::{is_age_file, open_with_passphrase};
use arka_proto::{AgentKey, RecoveryIdentities};

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

/// Loads recovery identities. A passphrase-protected file asks `passphrase` for its
/// passphrase (`ARKA_PASSPHRASE`, or a prompt on the terminal).
pub fn load_identities(path: &Path, passphrase: impl FnOnce() -> Result<String>) -> Result<RecoveryIdentities> {
    let bytes = read_key_file(path, "recovery identity")?;
    let plain = if is_age_file(&bytes) {
        let pass = passphrase()?;
        zeroize::Zeroizing::new(
            open_with_passphrase(&bytes, &pass).map_err(|e| Error::Key(format!("{}: {e}", path.display())))?,
        )
    } else {
        zeroize::Zeroizing::new(bytes)
    };
    let text = std::str::from_utf8(&plain)
        .map_err(|_| Error::Key(format!("{} is not an age identity file", path.display())))?;
    RecoveryIdentities::parse(text).map_err(|e| Error::Key(format!("{}: {e}", path.display())))
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
