//! What a files backup leaves out: gitignore-style patterns, folders holding a marker file
//! (`.nobackup`), and files over a size. Matching is the `ignore` crate's gitignore
//! matcher (ripgrep's), not our own: `*.tmp` anywhere, `**/tmp/` at any depth, `!keep.dcm`
//! to take a file back, a trailing `/` for folders only. Patterns are matched against the
//! path as the snapshot shows it (`arka ls`), where each backed-up path is a top-level
//! folder named by its last component: `/imaging/cache/` is the `cache` folder directly
//! in the backed-up `/srv/imaging`. As in git, a file cannot be taken back when a folder
//! above it is excluded, because that folder is not read at all.

use std::fs::Metadata;
use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::error::{Error, Result};

/// The rules as written in agent.toml or on the command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExcludeRules {
    /// gitignore-style patterns.
    pub patterns: Vec<String>,
    /// A folder holding a file (or folder) of one of these names is left out, with the
    /// marker itself.
    pub if_present: Vec<String>,
    /// Files larger than this many bytes are left out.
    pub larger_than: Option<u64>,
}

impl ExcludeRules {
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty() && self.if_present.is_empty() && self.larger_than.is_none()
    }

    /// Checks every pattern and marker name, saying which one is wrong and why.
    pub fn check(&self) -> std::result::Result<(), String> {
        matcher(Path::new(""), &self.patterns)?;
        for name in &self.if_present {
            if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
                return Err(format!("exclude_if_present {name:?}: give a file name such as \".nobackup\", not a path"));
            }
        }
        Ok(())
    }
}

/// The rules, ready to match under the folders being backed up.
#[derive(Default)]
pub(crate) struct Excluder {
    patterns: Option<Gitignore>,
    /// Each backed-up path with the top-level name it has in the snapshot, longest first.
    roots: Vec<(PathBuf, PathBuf)>,
    if_present: Vec<String>,
    larger_than: Option<u64>,
}

impl Excluder {
    pub fn new(rules: &ExcludeRules, roots: &[PathBuf]) -> Result<Self> {
        let patterns = match rules.patterns.is_empty() {
            true => None,
            false => Some(matcher(Path::new(""), &rules.patterns).map_err(Error::Usage)?),
        };
        let name = |p: &Path| PathBuf::from(String::from_utf8_lossy(&crate::platform::top_level_name(p)).into_owned());
        let mut roots: Vec<(PathBuf, PathBuf)> = roots.iter().map(|r| (r.clone(), name(r))).collect();
        roots.sort_by_key(|(root, _)| std::cmp::Reverse(root.as_os_str().len()));
        Ok(Self { patterns, roots, if_present: rules.if_present.clone(), larger_than: rules.larger_than })
    }

    /// Whether the entry at `path` is left out.
    pub fn excludes(&self, path: &Path, meta: &Metadata) -> bool {
        let is_dir = meta.is_dir();
        if let Some(m) = &self.patterns {
            if self.in_snapshot(path).is_some_and(|p| m.matched(&p, is_dir).is_ignore()) {
                return true;
            }
        }
        if is_dir && self.if_present.iter().any(|name| std::fs::symlink_metadata(path.join(name)).is_ok()) {
            return true;
        }
        meta.is_file() && self.larger_than.is_some_and(|limit| meta.len() > limit)
    }

    /// Whether a change at `path` (which may be gone by now) is in what the patterns or the
    /// size limit leave out, so a watcher need not wake for it. A marker file
    /// (`exclude_if_present`) is not looked for here: that would take a look into every
    /// parent folder at every change.
    pub fn leaves_out_change(&self, path: &Path) -> bool {
        let meta = std::fs::symlink_metadata(path).ok();
        if let (Some(m), Some(p)) = (&self.patterns, self.in_snapshot(path)) {
            let is_dir = meta.as_ref().is_some_and(Metadata::is_dir);
            if m.matched_path_or_any_parents(&p, is_dir).is_ignore() {
                return true;
            }
        }
        meta.is_some_and(|m| m.is_file() && self.larger_than.is_some_and(|limit| m.len() > limit))
    }

    /// `path` as the snapshot shows it: the top-level name of its backed-up path, then the
    /// rest. `None` for a backed-up path itself (it is never excluded by a pattern).
    fn in_snapshot(&self, path: &Path) -> Option<PathBuf> {
        let (root, name) = self.roots.iter().find(|(root, _)| path.starts_with(root))?;
        let rest = path.strip_prefix(root).ok().filter(|r| !r.as_os_str().is_empty())?;
        Some(name.join(rest))
    }
}

fn matcher(root: &Path, patterns: &[String]) -> std::result::Result<Gitignore, String> {
    let mut builder = GitignoreBuilder::new(root);
    for p in patterns {
        if p.trim().is_empty() {
            return Err("an exclude pattern is empty".into());
        }
        builder.add_line(None, p).map_err(|e| format!("exclude pattern {p:?}: {e}"))?;
    }
    builder.build().map_err(|e| format!("exclude patterns: {e}"))
}

/// Reads `--exclude-file`: one pattern per line; blank lines and `#` comments skipped.
pub fn patterns_from_file(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("cannot read the exclude file {}: {e}", path.display())))?;
    Ok(text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backed-up folder named `clinic` under `dir`.
    fn tree(dir: &Path) -> PathBuf {
        let root = dir.join("clinic");
        for f in ["a.dcm", "a.tmp", "cache/x.dcm", "sub/cache/y.dcm", "sub/keep.tmp", "skip/.nobackup", "skip/z.dcm"] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, vec![0u8; if f == "a.dcm" { 5000 } else { 10 }]).unwrap();
        }
        root
    }

    fn excluded(rules: &ExcludeRules, root: &Path) -> Vec<String> {
        let ex = Excluder::new(rules, &[root.to_path_buf()]).unwrap();
        let mut out = Vec::new();
        let mut pending = vec![root.to_path_buf()];
        while let Some(dir) = pending.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let path = e.unwrap().path();
                let meta = std::fs::symlink_metadata(&path).unwrap();
                if ex.excludes(&path, &meta) {
                    out.push(path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/"));
                } else if meta.is_dir() {
                    pending.push(path);
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn gitignore_patterns_markers_and_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let root = tree(dir.path());
        let rules = |patterns: &[&str]| ExcludeRules {
            patterns: patterns.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        };
        let root = root.as_path();
        assert_eq!(excluded(&rules(&["*.tmp", "!keep.tmp"]), root), ["a.tmp"]);
        // Anchored: only the cache folder directly in the backed-up `clinic` folder.
        assert_eq!(excluded(&rules(&["/clinic/cache/"]), root), ["cache"]);
        assert_eq!(excluded(&rules(&["cache/"]), root), ["cache", "sub/cache"]);
        assert!(excluded(&rules(&["/cache/"]), root).is_empty(), "/cache/ is a top-level folder of the snapshot");
        let markers = ExcludeRules { if_present: vec![".nobackup".into()], ..Default::default() };
        assert_eq!(excluded(&markers, root), ["skip"]);
        let big = ExcludeRules { larger_than: Some(1000), ..Default::default() };
        assert_eq!(excluded(&big, root), ["a.dcm"]);
        assert!(excluded(&ExcludeRules::default(), root).is_empty());
    }

    #[test]
    fn bad_rules_are_named() {
        let bad = ExcludeRules { patterns: vec!["a{b".into()], ..Default::default() };
        assert!(bad.check().unwrap_err().contains("\"a{b\""));
        let path = ExcludeRules { if_present: vec!["x/.nobackup".into()], ..Default::default() };
        assert!(path.check().unwrap_err().contains("not a path"));
        assert!(ExcludeRules { patterns: vec![" ".into()], ..Default::default() }.check().is_err());
    }
}
