//! Platform specifics of file metadata and names, kept behind `cfg` so the Windows build
//! shares everything else.

pub mod retry;
mod secret;
pub mod shutdown;
#[cfg(test)]
pub(crate) mod test_data;
pub mod units;

pub use secret::Secret;

use std::ffi::{OsStr, OsString};
use std::fs::Metadata;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Metadata fields that differ between platforms.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlatformMeta {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub attributes: Option<u32>,
    /// Change time (Unix) or creation time (Windows), ns: the files cache uses it to catch
    /// content changed with a restored mtime.
    pub ctime_ns: i64,
    pub inode: u64,
}

#[cfg(unix)]
pub fn platform_meta(m: &Metadata) -> PlatformMeta {
    use std::os::unix::fs::MetadataExt;
    PlatformMeta {
        mode: Some(m.mode() & 0o7777),
        uid: Some(m.uid()),
        gid: Some(m.gid()),
        attributes: None,
        ctime_ns: m.ctime().saturating_mul(1_000_000_000).saturating_add(m.ctime_nsec()),
        inode: m.ino(),
    }
}

#[cfg(windows)]
pub fn platform_meta(m: &Metadata) -> PlatformMeta {
    use std::os::windows::fs::MetadataExt;
    PlatformMeta {
        mode: None,
        uid: None,
        gid: None,
        attributes: Some(m.file_attributes()),
        // Windows has no change time in std; creation time, as Unix-epoch ns like mtime_ns.
        ctime_ns: m.created().map(time_to_ns).unwrap_or(0),
        inode: 0,
    }
}

/// This machine's name, for snapshots and audit records.
pub fn hostname() -> String {
    let from_env = std::env::var("COMPUTERNAME").or_else(|_| std::env::var("HOSTNAME")).ok();
    from_env
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The account running arka, for audit records: `USER`, `LOGNAME` or `USERNAME`, else
/// (services often have none of them) the account of the process's uid.
pub fn username() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()))
        .or_else(account_of_uid)
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(unix)]
fn account_of_uid() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    // The owner of /proc/self is our effective uid.
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
    });
    Some(name.unwrap_or_else(|| format!("uid {uid}")))
}

#[cfg(not(unix))]
fn account_of_uid() -> Option<String> {
    None
}

pub fn time_to_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

pub fn ns_to_time(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

/// A file name as stored: raw bytes on Unix (non-UTF-8 names survive), WTF-8 on Windows.
pub fn name_to_bytes(name: &OsStr) -> Vec<u8> {
    name.as_encoded_bytes().to_vec()
}

/// The root-tree name of a backed-up path: its last component, or for a path that has
/// none (a drive, a share, `/`) a readable stand-in: the share's name for `\\nas\imaging`
/// and `\\?\UNC\nas\imaging`, the letter for `C:\`, `root` for `/`.
pub fn top_level_name(path: &std::path::Path) -> Vec<u8> {
    match path.file_name() {
        Some(n) => name_to_bytes(n),
        None => root_name(&path.to_string_lossy()).into_bytes(),
    }
}

/// Whether two names are one entry on this platform's file systems: on Windows, names
/// that differ only in case (`C:\Clinic\Imaging` and `\\nas\imaging` would restore
/// into one folder).
pub fn same_name(a: &[u8], b: &[u8]) -> bool {
    names_equal(a, b, cfg!(windows))
}

fn names_equal(a: &[u8], b: &[u8], ignore_case: bool) -> bool {
    if ignore_case {
        String::from_utf8_lossy(a).to_lowercase() == String::from_utf8_lossy(b).to_lowercase()
    } else {
        a == b
    }
}

/// [`top_level_name`] of a root, from its text (the same on every platform, so tested on
/// Linux too; only Windows has such roots without a last component).
fn root_name(root: &str) -> String {
    let text = root.replace('/', "\\");
    let verbatim = text.strip_prefix(r"\\?\").or_else(|| text.strip_prefix(r"\\.\"));
    let unc = match verbatim {
        Some(rest) => rest.get(..4).filter(|p| p.eq_ignore_ascii_case(r"UNC\")).map(|_| &rest[4..]),
        None => text.strip_prefix(r"\\"),
    };
    if let Some(share) = unc.and_then(|u| u.split('\\').nth(1)).filter(|s| !s.is_empty()) {
        return share.to_string();
    }
    let s: String = text.chars().filter(|c| c.is_alphanumeric()).collect();
    if s.is_empty() {
        "root".into()
    } else {
        s
    }
}

#[cfg(unix)]
pub fn name_from_bytes(bytes: &[u8]) -> OsString {
    use std::os::unix::ffi::OsStringExt;
    OsString::from_vec(bytes.to_vec())
}

#[cfg(windows)]
pub fn name_from_bytes(bytes: &[u8]) -> OsString {
    OsString::from(String::from_utf8_lossy(bytes).into_owned())
}

/// Which of a node's recorded owner and mode bits a restore applies. The recorded values
/// come from the agent, which ransomware on the clinic server may control: restoring
/// them as root would recreate a setuid-root program it planted, or files owned by an
/// account it made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ownership {
    /// The default: the read/write/execute bits only; files belong to whoever restores,
    /// and setuid, setgid and sticky bits are dropped.
    #[default]
    Safe,
    /// `--same-owner`: the recorded owner and group too (when running as root: nobody else
    /// may give files away), and the setuid, setgid and sticky bits.
    Same,
}

impl Ownership {
    /// The mode to set for a recorded one.
    pub fn mode(self, recorded: u32) -> u32 {
        match self {
            Self::Safe => recorded & 0o777,
            Self::Same => recorded & 0o7777,
        }
    }

    /// The owner and group to set, if any, for recorded ones, when the restore runs as
    /// root (`am_root`) or not.
    pub fn owner(self, uid: Option<u32>, gid: Option<u32>, am_root: bool) -> Option<(u32, u32)> {
        match (self, uid, gid) {
            (Self::Same, Some(uid), Some(gid)) if am_root => Some((uid, gid)),
            _ => None,
        }
    }
}

/// Applies permissions, and with [`Ownership::Same`] ownership, after a restore. Failing
/// to change the owner is not an error (the file is there, with the restorer's).
#[cfg(unix)]
pub fn apply_permissions(
    path: &std::path::Path,
    node: &arka_proto::Node,
    is_symlink: bool,
    ownership: Ownership,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // Owner first: changing it clears setuid and setgid bits, which the mode then sets.
    if let Some((uid, gid)) = ownership.owner(node.uid, node.gid, is_root()) {
        let _ = std::os::unix::fs::lchown(path, Some(uid), Some(gid));
    }
    if let (Some(mode), false) = (node.mode, is_symlink) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(ownership.mode(mode)))?;
    }
    Ok(())
}

#[cfg(unix)]
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // The owner of a file we just created is our effective uid.
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

#[cfg(windows)]
pub fn apply_permissions(
    path: &std::path::Path,
    node: &arka_proto::Node,
    _is_symlink: bool,
    _ownership: Ownership,
) -> std::io::Result<()> {
    const FILE_ATTRIBUTE_READONLY: u32 = 1;
    if let Some(attrs) = node.attributes {
        let mut perms = std::fs::metadata(path)?.permissions();
        perms.set_readonly(attrs & FILE_ATTRIBUTE_READONLY != 0);
        std::fs::set_permissions(path, perms)?;
    }
    Ok(())
}

#[cfg(unix)]
pub fn symlink(target: &[u8], at: &std::path::Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(name_from_bytes(target), at)
}

#[cfg(windows)]
pub fn symlink(target: &[u8], at: &std::path::Path) -> std::io::Result<()> {
    std::os::windows::fs::symlink_file(name_from_bytes(target), at)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// #15 point 7: a restore does not recreate setuid programs or foreign owners the
    /// (possibly compromised) agent recorded, unless asked with `--same-owner`.
    #[test]
    fn a_restore_drops_special_bits_and_owners_unless_asked_for_the_same_owner() {
        assert_eq!(Ownership::default(), Ownership::Safe);
        for (recorded, safe, same) in
            [(0o4755, 0o755, 0o4755), (0o2750, 0o750, 0o2750), (0o1777, 0o777, 0o1777), (0o100644, 0o644, 0o644)]
        {
            assert_eq!(Ownership::Safe.mode(recorded), safe, "{recorded:o}");
            assert_eq!(Ownership::Same.mode(recorded), same, "{recorded:o}");
        }
        for am_root in [false, true] {
            assert_eq!(Ownership::Safe.owner(Some(0), Some(0), am_root), None);
            assert_eq!(Ownership::Safe.owner(Some(1001), Some(1001), am_root), None);
            assert_eq!(Ownership::Same.owner(None, Some(5), am_root), None);
        }
        assert_eq!(Ownership::Same.owner(Some(1001), Some(50), true), Some((1001, 50)));
        assert_eq!(Ownership::Same.owner(Some(1001), Some(50), false), None, "only root may give files away");
    }

    #[cfg(unix)]
    #[test]
    fn a_restored_setuid_file_gets_only_its_permission_bits_by_default() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tool");
        std::fs::write(&path, b"#!/bin/sh\n").unwrap();
        let node = arka_proto::Node {
            mode: Some(0o6755),
            uid: Some(0),
            gid: Some(0),
            ..arka_proto::Node::new(b"tool", arka_proto::NodeKind::File)
        };
        let mode = || std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        apply_permissions(&path, &node, false, Ownership::Safe).unwrap();
        assert_eq!(mode(), 0o755);
        apply_permissions(&path, &node, false, Ownership::Same).unwrap();
        // The owner may set setuid on their own file; setgid needs the group, which a test
        // account may lack, so only the setuid bit is certain.
        assert_eq!(mode() & 0o4777, 0o4755);
    }

    #[test]
    fn a_share_root_is_named_after_the_share() {
        assert_eq!(root_name(r"\\nas\imaging"), "imaging");
        assert_eq!(root_name(r"\\nas\imaging\"), "imaging");
        assert_eq!(root_name(r"\\?\UNC\nas\imaging"), "imaging");
        assert_eq!(root_name(r"\\?\unc\xray-pc\RVG$\"), "RVG$");
        assert_eq!(root_name("//nas/imaging"), "imaging");
    }

    #[test]
    fn a_drive_root_is_named_after_its_letter() {
        assert_eq!(root_name(r"C:\"), "C");
        assert_eq!(root_name(r"\\?\D:\"), "D");
        assert_eq!(root_name("C:"), "C");
    }

    #[test]
    fn names_differing_in_case_are_one_entry_where_case_is_ignored() {
        assert!(names_equal("Imaging".as_bytes(), "imaging".as_bytes(), true));
        assert!(names_equal("ZDJĘCIA".as_bytes(), "zdjęcia".as_bytes(), true));
        assert!(!names_equal("Imaging".as_bytes(), "imaging".as_bytes(), false));
        assert!(!names_equal(b"rvg", b"rvg2", true));
    }

    #[test]
    fn other_roots_get_a_readable_name() {
        assert_eq!(root_name("/"), "root");
        assert_eq!(root_name(r"\\nas"), "nas", "a server without a share");
        assert_eq!(top_level_name(std::path::Path::new("/srv/imaging/")), b"imaging");
    }
}
