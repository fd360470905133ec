//! Platform specifics of file metadata and names, kept behind `cfg` so the Windows build
//! shares everything else.

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

#[cfg(unix)]
pub fn name_from_bytes(bytes: &[u8]) -> OsString {
    use std::os::unix::ffi::OsStringExt;
    OsString::from_vec(bytes.to_vec())
}

#[cfg(windows)]
pub fn name_from_bytes(bytes: &[u8]) -> OsString {
    OsString::from(String::from_utf8_lossy(bytes).into_owned())
}

/// Applies permissions and ownership after a restore. Ownership only when running as
/// root (anyone else may not give files away); failures there are not errors.
#[cfg(unix)]
pub fn apply_permissions(path: &std::path::Path, node: &arka_proto::Node, is_symlink: bool) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let (Some(uid), Some(gid)) = (node.uid, node.gid) {
        if is_root() {
            let _ = std::os::unix::fs::lchown(path, Some(uid), Some(gid));
        }
    }
    if let (Some(mode), false) = (node.mode, is_symlink) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
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
pub fn apply_permissions(path: &std::path::Path, node: &arka_proto::Node, _is_symlink: bool) -> std::io::Result<()> {
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
