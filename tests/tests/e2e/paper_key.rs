//! Issue #17.4, a paper key people can use: `arka keygen --paper` prints the recovery
//! identity as lines with checksums; a repository made for its recipient is restored with
//! `--identity -` from those lines typed back by hand (case, spacing and look-alike letters
//! changed), byte for byte; and a typo fails as a wrong key (exit 12), naming its line and
//! group and printing nothing of the key.

use std::ffi::OsString;
use std::path::PathBuf;

use arka_tests::{assert_same_tree, os_args, pseudo_random, run_with_stdin, write_file, Fixture, Run};

/// A repository initialised for a paper key's recipient, and what `keygen --paper` printed.
struct PaperWorld {
    fx: Fixture,
    /// The paper key's lines as printed (groups and checksum, no `#` lines).
    lines: Vec<String>,
    /// The identity file `-o` wrote beside the paper.
    identity_file: PathBuf,
    repo: PathBuf,
    agent_key: PathBuf,
}

impl PaperWorld {
    fn new() -> Self {
        let fx = Fixture::new();
        let identity_file = fx.path("paper.key");
        let printed = fx.arka(os_args!["keygen", "--paper", "-o", identity_file]).ok();
        let text = printed.stdout_text();
        let recipient = printed
            .stderr
            .lines()
            .find_map(|l| l.strip_prefix("public recipient: "))
            .expect("keygen names the recipient on stderr")
            .to_string();
        assert!(text.contains(&recipient), "the paper names its recipient:\n{text}");
        let lines: Vec<String> =
            text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).map(str::to_string).collect();
        assert_eq!(lines.len(), 3, "three lines to type:\n{text}");

        let (repo, agent_key) = (fx.path("paper-repo"), fx.path("paper-agent.key"));
        fx.arka(os_args!["init", "--repo", repo, "--recipient", recipient, "--agent-key-out", agent_key]).ok();
        Self { fx, lines, identity_file, repo, agent_key }
    }

    /// `arka ARGS… --repo R --identity -` with `typed` on standard input.
    fn with_typed(&self, args: Vec<OsString>, typed: &str) -> Run {
        let mut cmd = self.fx.command();
        cmd.args(args).arg("--repo").arg(&self.repo).args(["--identity", "-"]);
        run_with_stdin(cmd, typed.as_bytes())
    }

    /// Every group and checksum printed on the paper.
    fn groups(&self) -> Vec<&str> {
        self.lines.iter().flat_map(|l| l.split_whitespace()).collect()
    }
}

/// The lines as a person might type them: lower case, O for 0 and l for 1, groups joined
/// by dashes in threes instead of spaced in fours, a blank line between.
fn typed_by_hand(lines: &[String]) -> String {
    let mut out = String::new();
    for line in lines {
        let chars: Vec<char> = line
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| match c {
                '0' => 'O',
                '1' => 'l',
                c => c.to_ascii_lowercase(),
            })
            .collect();
        let regrouped: Vec<String> = chars.chunks(3).map(|g| g.iter().collect()).collect();
        out.push_str(&format!("  {}\n\n", regrouped.join("-")));
    }
    out
}

#[test]
fn a_paper_key_typed_back_on_stdin_restores_byte_identical() {
    let w = PaperWorld::new();
    let src = w.fx.path("clinic");
    write_file(&src.join("patients/kowalski.dcm"), &pseudo_random(17, 300_000));
    write_file(&src.join("notes.txt"), b"recall in six months\n");
    w.fx.arka(os_args!["backup", "--repo", w.repo, "--agent-key", w.agent_key, src]).ok();

    let target = w.fx.path("restored");
    let typed = typed_by_hand(&w.lines);
    assert_ne!(typed.trim(), w.lines.join("\n"), "the typed form differs from the printed one");
    let restored = w.with_typed(os_args!["restore", "latest", "--target", target], &typed).ok();
    assert!(!restored.stderr.contains(&w.lines[0][..4]), "restore repeated the key:\n{}", restored.stderr);
    assert_same_tree(&src, &target.join("clinic"));

    // The identity file written beside the paper is the same key; and ARKA_IDENTITY=- works too.
    w.fx.arka(os_args!["ls", "--repo", w.repo, "--identity", w.identity_file, "latest"]).ok();
    let mut cmd = w.fx.command();
    cmd.env("ARKA_IDENTITY", "-").args(os_args!["--json", "ls", "--repo", w.repo, "latest"]);
    let listed = run_with_stdin(cmd, w.lines.join("\n").as_bytes()).ok();
    assert!(listed.stdout_text().contains("kowalski.dcm"), "{}", listed.stdout_text());
}

#[test]
fn a_typo_in_one_group_fails_as_a_wrong_key_naming_it_and_nothing_of_the_key() {
    let w = PaperWorld::new();
    let src = w.fx.path("clinic");
    write_file(&src.join("a.txt"), b"x-ray");
    w.fx.arka(os_args!["backup", "--repo", w.repo, "--agent-key", w.agent_key, src]).ok();

    // Line 2, group 3: its second character (after "XXXX XXXX X").
    let mut lines = w.lines.clone();
    let at = 11;
    let wrong = if lines[1].as_bytes()[at] == b'7' { "8" } else { "7" };
    lines[1].replace_range(at..at + 1, wrong);
    let typo_group = lines[1].split_whitespace().nth(2).unwrap().to_string();

    let target = w.fx.path("restored");
    let failed = w
        .with_typed(os_args!["restore", "latest", "--target", target], &lines.join("\n"))
        .expect_code(12)
        .expect_stderr("line 2, group 3 does not match its checksum: check it against the paper");
    assert!(failed.stdout.is_empty(), "stdout: {}", failed.stdout_text());
    for group in w.groups().into_iter().chain([typo_group.as_str()]) {
        assert!(!failed.stderr.contains(group), "stderr repeats {group:?}:\n{}", failed.stderr);
    }
    assert!(!target.exists(), "nothing is restored with a mistyped key");
}
