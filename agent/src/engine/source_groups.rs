//! Snapshots grouped by the source they back up, and each group's newest at a time: what a
//! disaster restore of everything (`arka restore --at T --target DIR`) restores.
//!
//! A group is named by the snapshot's `source_name` (the agent config's source name), or a
//! CLI dump's `--name`; snapshots without either (files backups made with the CLI, or before
//! source names were recorded) join the named group with the same host and paths if there
//! is one, and otherwise are grouped by host and paths. Every group name is a safe folder
//! name: the snapshot was written by an agent key, which ransomware may hold, so nothing it
//! records may lead a restore outside its folder.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::engine::backup::{check_source_name, MAX_SOURCE_NAME};
use crate::repo::snapshots;
use crate::repo::timeline::TimedSnapshot;

/// One source's pick.
pub struct SourcePick<'a> {
    /// A safe folder name: letters, digits, `.`, `_`, `-`, not `.` or `..`.
    pub name: String,
    pub chosen: &'a TimedSnapshot,
    /// Newer flagged snapshots of this source that `latest` passed over.
    pub passed_over: Vec<&'a TimedSnapshot>,
    /// The group's snapshots at or before the time come from several hosts (the newest wins).
    pub hosts: Vec<String>,
}

/// For each source of `snaps` (oldest first, as the timeline gives them), its newest snapshot
/// at or before `at` by the rules of `latest` (`snapshots::select`). Sources with nothing at
/// or before `at` are left out. Ordered by name.
pub fn newest_per_source(snaps: &[TimedSnapshot], at: Option<i64>) -> Vec<SourcePick<'_>> {
    let mut groups: BTreeMap<String, Vec<TimedSnapshot>> = BTreeMap::new();
    for (name, t) in group_names(snaps).into_iter().zip(snaps) {
        groups.entry(name).or_default().push(t.clone());
    }
    let mut picks = Vec::new();
    for (name, members) in groups {
        let Ok(chosen) = snapshots::select(&members, "latest", at) else { continue };
        // Back to the caller's own references, which outlive this function's copies.
        let find = |id| snaps.iter().find(|t| t.id == id).expect("a member of snaps");
        let passed_over = snapshots::passed_over(&members, chosen, at).map(|t| find(t.id)).collect();
        let hosts: HashSet<&str> = members
            .iter()
            .filter(|t| at.is_none_or(|at| t.effective_ns <= at))
            .map(|t| t.snapshot.hostname.as_str())
            .collect();
        let mut hosts: Vec<String> = hosts.into_iter().map(str::to_string).collect();
        hosts.sort();
        picks.push(SourcePick { name, chosen: find(chosen.id), passed_over, hosts });
    }
    picks
}

/// The group name of each snapshot, in order.
fn group_names(snaps: &[TimedSnapshot]) -> Vec<String> {
    let named = |t: &TimedSnapshot| {
        let s = &t.snapshot;
        s.source_name.clone().or_else(|| (s.source_kind == "command").then(|| s.source.first().cloned()).flatten())
    };
    // Unnamed snapshots of a host and paths some named snapshot also has join that name.
    let mut by_origin: HashMap<(&str, &[String]), String> = HashMap::new();
    for t in snaps {
        if let Some(name) = named(t) {
            by_origin.insert((&t.snapshot.hostname, &t.snapshot.source), name);
        }
    }
    let mut unnamed_folders = FolderNames::default();
    snaps
        .iter()
        .map(|t| match named(t).or_else(|| by_origin.get(&(&*t.snapshot.hostname, &*t.snapshot.source)).cloned()) {
            Some(name) => match check_source_name(&name) {
                Ok(()) => name,
                // Not a name arka would record: whatever it turns into must not pass for one.
                Err(_) => with_hash(&sanitized(&name).0, &name),
            },
            None => unnamed_folders.name(&t.snapshot.hostname, &t.snapshot.source),
        })
        .collect()
}

/// Folder names for groups of unnamed snapshots, distinct for distinct host and paths.
#[derive(Default)]
struct FolderNames {
    given: HashMap<String, String>,
    used: HashSet<String>,
}

impl FolderNames {
    fn name(&mut self, host: &str, paths: &[String]) -> String {
        let key = format!("{host}\0{}", paths.join("\0"));
        if let Some(name) = self.given.get(&key) {
            return name.clone();
        }
        let readable = format!("{host} {}", paths.join(" "));
        let mut name = safe_name(&readable, &key);
        if self.used.contains(&name) {
            name = with_hash(&name, &key);
        }
        self.used.insert(name.clone());
        self.given.insert(key, name.clone());
        name
    }
}

/// `text` as a folder name: kept as it is when `check_source_name` accepts it; otherwise
/// sanitized, and when anything but separators was lost (other characters, length) a short
/// hash of `key` keeps names apart.
fn safe_name(text: &str, key: &str) -> String {
    if check_source_name(text).is_ok() {
        return text.to_string();
    }
    match sanitized(text) {
        (base, true) => with_hash(&base, key),
        (base, false) => base,
    }
}

/// Every run of characters a name may not hold (`/`, spaces, `:`, `\`, anything else)
/// becomes one `-`, leading and trailing `-` and `.` go, and the length is bounded. Also
/// says whether anything but separators was lost.
fn sanitized(text: &str) -> (String, bool) {
    let mut out = String::new();
    let mut lossy = false;
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || "._-".contains(c) {
            out.push(c);
        } else {
            lossy |= !"/\\: ".contains(c);
            if !out.ends_with('-') {
                out.push('-');
            }
        }
    }
    let trimmed = out.trim_matches(|c| c == '-' || c == '.');
    // Room for the hash's "-" and 8 digits.
    let limit = MAX_SOURCE_NAME - 9;
    lossy |= trimmed.len() > limit || trimmed.is_empty();
    (trimmed.chars().take(limit).collect::<String>().trim_end_matches('-').to_string(), lossy)
}

fn with_hash(base: &str, key: &str) -> String {
    let hash = blake3::hash(key.as_bytes()).to_hex();
    let base: String = base.chars().take(MAX_SOURCE_NAME - 9).collect();
    match base.is_empty() {
        true => format!("source-{}", &hash[..8]),
        false => format!("{base}-{}", &hash[..8]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arka_proto::ObjectId;

    fn timed(id: u8, time: i64, host: &str, kind: &str, source: &[&str], name: Option<&str>) -> TimedSnapshot {
        let mut s = crate::repo::snapshots::test_snapshot(time);
        s.hostname = host.into();
        s.source_kind = kind.into();
        s.source = source.iter().map(|s| s.to_string()).collect();
        s.source_name = name.map(str::to_string);
        TimedSnapshot::new(ObjectId([id; 32]), s, time)
    }

    fn picked(snaps: &[TimedSnapshot], at: Option<i64>) -> Vec<(String, u8)> {
        newest_per_source(snaps, at).iter().map(|p| (p.name.clone(), p.chosen.id.0[0])).collect()
    }

    #[test]
    fn each_source_gets_its_newest_snapshot_at_the_time() {
        let snaps = vec![
            timed(1, 100, "srv", "files", &["/srv/imaging"], None),
            timed(2, 150, "srv", "command", &["clinic.sql"], Some("clinic-db")),
            timed(3, 200, "srv", "files", &["/srv/imaging"], Some("imaging")),
            timed(4, 250, "srv", "command", &["clinic.sql"], Some("clinic-db")),
            timed(5, 260, "laptop", "files", &["/home/dr/notes"], None),
            timed(6, 270, "srv", "command", &["other.sql"], None),
        ];
        assert_eq!(
            picked(&snaps, None),
            [
                ("clinic-db".into(), 4),
                ("imaging".into(), 3),
                ("laptop-home-dr-notes".into(), 5),
                ("other.sql".into(), 6)
            ]
        );
        // The unnamed older imaging backup counts as the imaging source's.
        assert_eq!(picked(&snaps, Some(120)), [("imaging".into(), 1)]);
        assert_eq!(picked(&snaps, Some(220)), [("clinic-db".into(), 2), ("imaging".into(), 3)]);
        assert!(picked(&snaps, Some(50)).is_empty());
    }

    #[test]
    fn names_from_snapshots_cannot_leave_the_target_folder() {
        let snaps = vec![
            timed(1, 100, "srv", "files", &["/a"], Some("../../etc")),
            timed(2, 100, "..", "files", &[".."], None),
            timed(3, 100, "h", "files", &["/x/a-b"], None),
            timed(4, 100, "h", "files", &["/x/a/b"], None),
            timed(5, 100, "h", "files", &["C:\\Data\\Ärzte"], None),
            timed(6, 100, "h", "files", &[&"x".repeat(300)], None),
        ];
        let names: Vec<String> = newest_per_source(&snaps, None).into_iter().map(|p| p.name).collect();
        assert_eq!(names.len(), 6, "{names:?}");
        for n in &names {
            assert!(check_source_name(n).is_ok(), "{n:?} is not a safe folder name");
        }
        assert!(names.iter().any(|n| n.starts_with("etc-")), "{names:?}");
        assert!(names.contains(&"h-x-a-b".to_string()), "{names:?}");
        assert!(names.iter().any(|n| n.starts_with("h-x-a-b-")), "colliding names kept apart: {names:?}");
    }

    #[test]
    fn a_source_on_several_hosts_is_noticed() {
        let snaps = vec![
            timed(1, 100, "old-server", "command", &["clinic.sql"], Some("clinic-db")),
            timed(2, 200, "new-server", "command", &["clinic.sql"], Some("clinic-db")),
        ];
        let picks = newest_per_source(&snaps, None);
        assert_eq!(picks[0].chosen.id, ObjectId([2; 32]));
        assert_eq!(picks[0].hosts, ["new-server", "old-server"]);
        assert_eq!(newest_per_source(&snaps, Some(150))[0].hosts, ["old-server"]);
    }
}
