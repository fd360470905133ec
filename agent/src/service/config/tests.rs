//! The config's tests: what loads, with which defaults, and every mistake reported at its
//! line with its section and key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::engine::retention::{Keep, RetentionPolicy};
use crate::service::schedule::Schedule;
use crate::store::server::parse_pin;
use crate::store::{Location, ServerOptions};

/// The minimal config of the agent-service issue, exactly as written there.
const MINIMAL: &str = r#"agent_key = "/etc/arka/agent.key"
state_dir = "/var/lib/arka"
[[target]]
url = "/mnt/nas/arka"
[[target]]
url = "s3://clinic-offsite/arka"
[[source]]
name = "imaging"
kind = "files"
paths = ["/srv/imaging"]
schedule = "every 1h"
watch = true
[[source]]
name = "clinic-db"
kind = "command"
command = "pg_dump --no-owner clinic"
schedule = "every 1h"
[status]
bind = "127.0.0.1:8765"
"#;

const EXAMPLE: &str = include_str!("../../../../packaging/arka-agent.example.toml");

/// A temporary folder standing in for /etc/arka, with a private agent key in it.
struct Etc {
    dir: tempfile::TempDir,
}

impl Etc {
    fn new() -> Self {
        let etc = Self { dir: tempfile::tempdir().unwrap() };
        etc.private_file("agent.key", &arka_proto::AgentKey::generate().to_file_text());
        etc
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn private_file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, content).unwrap();
        set_mode(&path, 0o600);
        path
    }

    /// Writes `text` as config.toml, with /etc/arka/ pointing here, and loads it.
    fn load(&self, text: &str) -> Result<Config, ConfigError> {
        let text = text.replace("/etc/arka/", &format!("{}/", self.dir.path().display()));
        let path = self.path("config.toml");
        std::fs::write(&path, text).unwrap();
        load(&path)
    }

    fn error(&self, text: &str) -> String {
        self.load(text).map(|_| ()).unwrap_err().to_string()
    }
}

fn set_mode(path: &Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let _ = (path, mode);
}

/// MINIMAL with its 1-based line `n` replaced by `with` (which may span lines or be empty).
fn edit(n: usize, with: &str) -> String {
    let mut lines: Vec<&str> = MINIMAL.lines().collect();
    lines[n - 1] = with;
    lines.join("\n") + "\n"
}

#[test]
fn a_maintenance_only_agent_needs_no_source_but_an_idle_one_is_refused() {
    let etc = Etc::new();
    let nas = "agent_key = \"/etc/arka/agent.key\"\n[[target]]\nurl = \"/srv/arka/clinic-a\"\n";
    let c = etc.load(&format!("{nas}[maintenance]\nforget = \"daily 03:00\"\nprune = \"sun 04:00\"\n")).unwrap();
    assert!(c.sources.is_empty() && c.maintenance.forget.is_some() && c.maintenance.prune.is_some());
    assert!(etc.error(nas).contains("no [[source]]"));
}

#[test]
fn the_minimal_config_loads_with_defaults() {
    let etc = Etc::new();
    let c = etc.load(MINIMAL).unwrap();
    assert_eq!(c.agent_key, etc.path("agent.key"));
    assert_eq!(c.state_dir, PathBuf::from("/var/lib/arka"));
    assert_eq!(c.hostname, crate::platform::hostname());
    let targets: Vec<(&str, &Location)> = c.targets.iter().map(|t| (t.name.as_str(), &t.location)).collect();
    assert_eq!(
        targets,
        [
            ("/mnt/nas/arka", &Location::Local("/mnt/nas/arka".into())),
            ("s3://clinic-offsite/arka", &Location::S3 { bucket: "clinic-offsite".into(), prefix: "arka".into() }),
        ]
    );
    let [imaging, db] = &c.sources[..] else { panic!("two sources") };
    assert_eq!(imaging.name, "imaging");
    assert_eq!(imaging.schedule, Schedule::Every(Duration::from_secs(3600)));
    assert_eq!(imaging.rpo, Duration::from_secs(7200));
    assert!(imaging.tags.is_empty());
    match &imaging.kind {
        SourceKind::Files { paths, watch, .. } => {
            assert_eq!(paths, &[PathBuf::from("/srv/imaging")]);
            assert_eq!(*watch, Some(DEFAULT_QUIET_PERIOD));
        }
        other => panic!("{other:?}"),
    }
    match &db.kind {
        SourceKind::Command { command, dump_name, timeout } => {
            assert_eq!(command, "pg_dump --no-owner clinic");
            assert_eq!(dump_name, "clinic-db");
            assert_eq!(*timeout, DEFAULT_COMMAND_TIMEOUT);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.status.bind, "127.0.0.1:8765".parse().unwrap());
    assert!(c.status.token.is_none());
    let m = &c.maintenance;
    assert_eq!((&m.forget, &m.prune, &m.verify), (&None, &None, &None));
    assert_eq!(m.retention, RetentionPolicy::clinic_default());
    assert_eq!((m.prune_grace, m.verify_percent), (DEFAULT_PRUNE_GRACE, DEFAULT_VERIFY_PERCENT));
    assert!(c.notify.webhook.is_none() && c.notify.email.is_none());
}

#[test]
fn sections_and_state_dir_have_defaults() {
    let etc = Etc::new();
    let text =
        MINIMAL.replace("state_dir = \"/var/lib/arka\"\n", "").replace("[status]\nbind = \"127.0.0.1:8765\"\n", "");
    let c = etc.load(&text).unwrap();
    assert_eq!(c.state_dir, default_state_dir());
    assert_eq!(c.status.bind.to_string(), DEFAULT_BIND);
}

#[test]
fn the_packaged_example_loads() {
    let etc = Etc::new();
    for name in ["status.token", "webhook.secret", "smtp.password", "nas.token"] {
        etc.private_file(name, &format!("secret-of-{name}\n"));
    }
    let c = etc.load(EXAMPLE).unwrap();
    assert_eq!(c.hostname, "reception-server");
    assert_eq!(c.targets.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["nas", "offsite"]);
    assert_eq!(
        c.targets[0].location,
        Location::Server { base: "https://nas.clinic.lan:8443".into(), repo: "reception".into() }
    );
    let server = &c.targets[0].server;
    assert_eq!(server.token_file.as_deref(), Some(etc.path("nas.token").as_path()));
    assert!(server.cert_sha256.as_deref().is_some_and(|p| parse_pin(p).is_ok()));
    assert_eq!(c.targets[1].server, ServerOptions::default());
    let [imaging, db] = &c.sources[..] else { panic!("two sources") };
    assert!(matches!(&imaging.kind, SourceKind::Files { watch: Some(q), .. }
        if *q == Duration::from_secs(120)));
    assert!(matches!(&db.kind, SourceKind::Command { dump_name, timeout, .. }
        if dump_name == "clinic.sql" && *timeout == Duration::from_secs(3600)));
    assert_eq!(db.tags, ["database"]);
    assert_eq!(c.status.token.as_ref().unwrap().expose(), "secret-of-status.token");
    let m = &c.maintenance;
    assert_eq!(m.forget.as_ref().unwrap().to_string(), "daily 03:30");
    assert_eq!(m.prune.as_ref().unwrap().to_string(), "sun 04:00");
    assert_eq!(m.verify_percent, 5);
    assert_eq!(m.retention.within, Some(48 * 3600));
    assert_eq!(m.retention.daily, Some(Keep::Within(180 * 86_400)), "6mo is six 30-day months");
    let webhook = c.notify.webhook.as_ref().unwrap();
    assert_eq!(webhook.secret.as_ref().unwrap().expose(), "secret-of-webhook.secret");
    let email = c.notify.email.as_ref().unwrap();
    assert_eq!((email.smtp_port, email.starttls, email.to.len()), (587, true, 2));
    assert_eq!(email.password.as_ref().unwrap().expose(), "secret-of-smtp.password");
    // Secrets never reach logs through Debug, nor does a webhook URL's path.
    let debug = format!("{c:?}");
    assert!(
        !debug.contains("secret-of") && !debug.contains("clinic-42") && debug.contains("hooks.example.com"),
        "{debug}"
    );
}

/// Every kind of mistake, with the line it must be reported at.
#[test]
fn errors_name_the_line_the_section_and_the_key() {
    let etc = Etc::new();
    let maint = |body: &str| format!("{MINIMAL}[maintenance]\n{body}\n");
    let notify = |body: &str| format!("{MINIMAL}[notify]\n{body}\n");
    let cases: Vec<(String, usize, &str)> = vec![
        (edit(11, "shedule = \"every 1h\""), 11, "source \"imaging\": unknown key \"shedule\"; did you mean \"schedule\"?"),
        (edit(17, "schedule = \"evry 1h\""), 17, "source \"clinic-db\": schedule \"evry 1h\": unknown form; use one of"),
        (edit(17, "schedule = \"every 5s\""), 17, "at least 10s"),
        (edit(15, "kind = \"file\""), 15, "kind: unknown value \"file\", expected \"files\" or \"command\""),
        (edit(12, "watch = \"yes\""), 12, "source \"imaging\": watch: invalid type: string \"yes\", expected a boolean"),
        (edit(9, "kind = \"files"), 9, "not valid TOML"),
        (edit(1, ""), 1, "missing key \"agent_key\""),
        (edit(1, "agent_key = \"/etc/arka/missing.key\""), 1, "agent_key: ") ,
        (edit(14, "name = \"imaging\""), 14, "source \"imaging\": a second source named \"imaging\""),
        (edit(8, "name = \"imaging scans\""), 8, "is not valid: use 1 to 64 letters"),
        (edit(10, ""), 7, "source \"imaging\": kind = \"files\" needs paths"),
        (edit(16, ""), 13, "source \"clinic-db\": kind = \"command\" needs command"),
        (edit(16, "command = \"pg_dump\"\npaths = [\"/srv\"]"), 17, "key \"paths\" does not apply to kind = \"command\""),
        (edit(12, "quiet_period = \"2m\""), 12, "quiet_period applies only with watch = true"),
        (edit(11, "schedule = \"every 1h\"\nrpo = \"30m\""), 12, "rpo \"30m\" is not longer than the schedule's interval (1h)"),
        (edit(11, "schedule = \"every 1h\"\nrpo = \"2 fortnights\""), 12, "rpo: \"2 fortnights\": unknown unit"),
        (edit(6, "url = \"ftp://nas/arka\""), 6, "target #2: url: unsupported repository URL"),
        (edit(6, "url = \"s3:///arka\""), 6, "names no bucket"),
        (edit(19, "bind = \"localhost\""), 19, "status: bind \"localhost\" is not an address and port"),
        (edit(19, "bind = \"0.0.0.0:8765\""), 19, "status: bind 0.0.0.0:8765 is reachable from other machines, so the status page needs a token"),
        (edit(19, "bind = 8765"), 19, "status: bind: invalid type: integer \"8765\", expected a string"),
        (edit(3, "").replace("url = \"/mnt/nas/arka\"\n[[target]]\nurl = \"s3://clinic-offsite/arka\"\n", ""), 1, "no [[target]]"),
        (maint("keep_daily = \"7x\""), 21, "maintenance: keep_daily: \"7x\": unknown unit"),
        (maint("keep_hourly = -3"), 21, "keep_hourly = -3: use a count"),
        (maint("forget = \"daily\""), 21, "maintenance: forget: schedule \"daily\": a time of day is missing"),
        (maint("verify_percent = 0"), 21, "verify_percent = 0: use 1 to 100"),
        (maint("prune_grace = \"soon\""), 21, "prune_grace: \"soon\""),
        (notify("webhook = { url = \"https://h.example/x\", secret = \"s\" }"), 21, "notify.webhook: unknown key \"secret\"; did you mean \"secret_file\"?"),
        (notify("webhook = { url = \"hooks.example\" }"), 21, "notify.webhook: url \"hooks.example\" is not a URL"),
        (notify("[notify.email]\nsmtp_host = \"smtp.example\"\nusername = \"u\"\nfrom = \"a@b.example\"\nto = [\"c@d.example\"]"), 23, "notify.email: username is set but password_file is not"),
        (notify("[notify.email]\nsmtp_host = \"smtp.example\"\nfrom = \"a@b.example\"\nto = [\"nobody\"]"), 24, "notify.email: to: \"nobody\" is not an e-mail address"),
    ];
    for (text, line, want) in &cases {
        let e = etc.error(text);
        let path = etc.path("config.toml");
        let prefix = format!("{}:{line}: ", path.display());
        assert!(
            e.lines().any(|l| l.starts_with(&prefix) && l.contains(want)),
            "want {prefix}…{want}\ngot {e}\nin\n{text}"
        );
    }
}

/// A misspelt or invented key must not be skipped silently: wherever it is, the error names
/// the key and its line.
#[test]
fn unknown_keys_are_refused_naming_the_key_and_its_line() {
    let etc = Etc::new();
    let email = "[notify.email]\nsmtp_host = \"smtp.example\"\nfrom = \"a@b.example\"\nto = [\"c@d.example\"]\n";
    let cases: Vec<(String, usize, &str)> = vec![
        (edit(2, "state_dir = \"/var/lib/arka\"\nretention = \"30d\""), 3, "unknown key \"retention\""),
        (edit(11, "schedule = \"every 1h\"\nkeep_daily = 7"), 12, "source \"imaging\": unknown key \"keep_daily\""),
        (edit(4, "url = \"/mnt/nas/arka\"\nregion = \"eu-west\""), 5, "target #1: unknown key \"region\""),
        (format!("{MINIMAL}{email}smtp_password = \"x\"\n"), 24, "notify.email: unknown key \"smtp_password\""),
    ];
    for (text, line, want) in &cases {
        let e = etc.error(text);
        let prefix = format!("{}:{line}: ", etc.path("config.toml").display());
        assert!(e.starts_with(&prefix) && e.contains(want), "want {prefix}…{want}\ngot {e}\nin\n{text}");
    }
}

/// Regression: `exclude` was accepted and ignored, so everything was backed up while the
/// config said otherwise. Until excludes exist (#16) it is refused, saying so.
#[test]
fn excludes_load_and_mistakes_are_named_at_their_line() {
    let etc = Etc::new();
    let cfg = etc
        .load(&edit(
            10,
            "paths = [\"/srv/imaging\"]\nexclude = [\"*.tmp\", \"/cache/\"]\nexclude_if_present = [\".nobackup\"]\n\
             exclude_larger_than = \"2 GiB\"",
        ))
        .unwrap();
    let SourceKind::Files { excludes, .. } = &cfg.sources[0].kind else { panic!("not a files source") };
    assert_eq!(excludes.patterns, ["*.tmp", "/cache/"]);
    assert_eq!(excludes.if_present, [".nobackup"]);
    assert_eq!(excludes.larger_than, Some(2 << 30));
    let e = etc.error(&edit(10, "paths = [\"/srv/imaging\"]\nexclude = [\"scans{\"]"));
    assert!(e.contains(":11: source \"imaging\": exclude pattern \"scans{\""), "{e}");
    let e = etc.error(&edit(10, "paths = [\"/srv/imaging\"]\nexclude_larger_than = \"2 parsecs\""));
    assert!(e.contains(":11: source \"imaging\": exclude_larger_than:") && e.contains("unknown unit"), "{e}");
    let e = etc.error(&edit(10, "paths = [\"/srv/imaging\"]\nexclude_if_present = [\"a/.nobackup\"]"));
    assert!(e.contains(":11: source \"imaging\": exclude_if_present"), "{e}");
    let e = etc.error(&edit(16, "command = \"pg_dump\"\nexclude = [\"*.tmp\"]"));
    assert!(e.contains(":17: source \"clinic-db\": key \"exclude\" does not apply to kind = \"command\""), "{e}");
}

#[test]
fn all_semantic_problems_are_reported_at_once() {
    let etc = Etc::new();
    let text = edit(17, "schedule = \"evry 1h\"").replace("bind = \"127.0.0.1:8765\"", "bind = \"0.0.0.0:1\"");
    let Err(ConfigError::Invalid { problems, .. }) = etc.load(&text) else { panic!("invalid") };
    assert_eq!(problems.iter().map(|p| p.line).collect::<Vec<_>>(), [17, 19], "{problems:?}");
    assert_eq!(problems[1].section.as_deref(), Some("status"));
}

#[cfg(unix)]
#[test]
fn secret_files_readable_by_others_are_refused_with_the_fix() {
    let etc = Etc::new();
    set_mode(&etc.path("agent.key"), 0o644);
    let e = etc.error(MINIMAL);
    let key = etc.path("agent.key");
    assert!(
        e.contains(&format!(
            ":1: agent_key: {} can be read by other users (mode 644): run `chmod 600 {}`",
            key.display(),
            key.display()
        )),
        "{e}"
    );
    set_mode(&etc.path("agent.key"), 0o640);
    assert!(etc.error(MINIMAL).contains("(mode 640)"));
    set_mode(&etc.path("agent.key"), 0o600);
    etc.private_file("status.token", "t0ken\n");
    set_mode(&etc.path("status.token"), 0o604);
    let text = MINIMAL
        .replace("bind = \"127.0.0.1:8765\"", "bind = \"0.0.0.0:8765\"\ntoken_file = \"/etc/arka/status.token\"");
    let e = etc.error(&text);
    assert!(e.contains(":20: status: token_file: ") && e.contains("chmod 600"), "{e}");
    set_mode(&etc.path("status.token"), 0o600);
    let c = etc.load(&text).unwrap();
    assert_eq!(c.status.token.unwrap().expose(), "t0ken");
    etc.private_file("status.token", "\n");
    assert!(etc.error(&text).contains("is empty"));
}

#[test]
fn server_targets_take_a_token_file_a_pin_and_a_ca() {
    let etc = Etc::new();
    etc.private_file("nas.token", "append-token-of-the-agent\n");
    std::fs::write(etc.path("ca.pem"), CA_PEM).unwrap();
    let target = |keys: &str| {
        MINIMAL.replace("url = \"/mnt/nas/arka\"", &format!("url = \"arka+https://nas:8443/clinic\"\n{keys}"))
    };
    let pin = "b5172fbd0518ffceaae8c1943783d94cfd856bf5bc87871f35ad5faa22d258f9";
    let c = etc
        .load(&target(&format!("token_file = \"nas.token\"\ncert_sha256 = \"{pin}\"\nca_file = \"/etc/arka/ca.pem\"")))
        .unwrap();
    let want = ServerOptions {
        token_file: Some(etc.path("nas.token")),
        cert_sha256: Some(pin.into()),
        ca_file: Some(etc.path("ca.pem")),
    };
    assert_eq!(c.targets[0].server, want);
    // No token file is not an error here: ARKA_SERVER_TOKEN may come from the service's
    // environment; the runner reports a missing token.
    assert_eq!(etc.load(&target("")).unwrap().targets[0].server, ServerOptions::default());
    // The token never reaches Debug.
    assert!(!format!("{c:?}").contains("append-token"));

    std::fs::write(etc.path("empty.pem"), "nothing here").unwrap();
    etc.private_file("blank.token", "\n");
    etc.private_file("spaced.token", "two words\n");
    let cases: Vec<(String, usize, &str)> = vec![
        (target("token_file = \"/etc/arka/missing.token\""), 5, "token_file: "),
        (target("token_file = \"blank.token\""), 5, "the token is empty"),
        (target("token_file = \"spaced.token\""), 5, "spaces"),
        (target("cert_sha256 = \"12:34\""), 5, "cert_sha256: \"12:34\" is not a SHA-256 fingerprint"),
        (target("ca_file = \"/etc/arka/empty.pem\""), 5, "ca_file: "),
        (target("ca_file = \"/etc/arka/none.pem\""), 5, "ca_file: cannot read"),
        (target("tokn_file = \"nas.token\""), 5, "unknown key \"tokn_file\"; did you mean \"token_file\"?"),
        (
            edit(4, "url = \"/mnt/nas/arka\"\ntoken_file = \"nas.token\""),
            5,
            "token_file applies only to an arka-server target",
        ),
        (edit(6, "url = \"s3://b/p\"\ncert_sha256 = \"00\""), 7, "cert_sha256 applies only to an arka-server target"),
        (edit(4, "url = \"arka+http://nas:8080/clinic\""), 4, "use arka+https://nas/"),
        (edit(4, "url = \"arka+https://nas/Clinic\""), 4, "is not a repository name"),
    ];
    for (text, line, want) in &cases {
        let e = etc.error(text);
        let prefix = format!("{}:{line}: ", etc.path("config.toml").display());
        assert!(
            e.lines().any(|l| l.starts_with(&prefix) && l.contains(want)),
            "want {prefix}…{want}\ngot {e}\nin\n{text}"
        );
    }
}

/// #16 point 7: per-target bandwidth limits, lifted in the full-speed hours; every
/// nonsense value refused at its line with the fix.
#[test]
fn targets_take_bandwidth_limits_and_full_speed_hours() {
    let etc = Etc::new();
    let target = |keys: &str| MINIMAL.replace("url = \"/mnt/nas/arka\"", &format!("url = \"/mnt/nas/arka\"\n{keys}"));
    let c = etc
        .load(&target("limit_upload = \"2 MiB/s\"\nlimit_download = \"8 MiB/s\"\nfull_speed_hours = \"20:00-06:00\""))
        .unwrap();
    let limits = &c.targets[0].limits;
    assert_eq!(limits.upload.as_ref().map(|p| p.rate()), Some(2 << 20));
    assert_eq!(limits.download.as_ref().map(|p| p.rate()), Some(8 << 20));
    let hours = limits.upload.as_ref().and_then(|p| p.full_speed_hours()).map(|h| h.to_string());
    assert_eq!(hours.as_deref(), Some("20:00-06:00"));
    assert!(c.targets[1].limits.is_none(), "no keys, no limits");
    let c = etc.load(&target("limit_download = \"1 MB/s\"")).unwrap();
    assert!(c.targets[0].limits.upload.is_none() && c.targets[0].limits.download.is_some());

    let cases: Vec<(String, usize, &str)> = vec![
        (target("limit_upload = \"0\""), 5, "limit_upload: \"0\": a limit is a rate: write it per second"),
        (target("limit_upload = \"0 MiB/s\""), 5, "would stop all traffic"),
        (target("limit_upload = \"2 MiB\""), 5, "write it per second, e.g. \"2 MiB/s\""),
        (target("limit_download = \"fast\""), 5, "limit_download: "),
        (target("limit_download = \"1 kB/s\""), 5, "at least \"16 KiB/s\""),
        (target("full_speed_hours = \"20:00-06:00\""), 5, "this target has neither: add a limit"),
        (target("limit_upload = \"1 MiB/s\"\nfull_speed_hours = \"20-6\""), 6, "write local hours as \"HH:MM-HH:MM\""),
        (target("limit_upload = \"1 MiB/s\"\nfull_speed_hours = \"09:00-09:00\""), 6, "start and end are the same"),
        (target("limit_uplod = \"1 MiB/s\""), 5, "unknown key \"limit_uplod\"; did you mean \"limit_upload\"?"),
    ];
    for (text, line, want) in &cases {
        let e = etc.error(text);
        let prefix = format!("{}:{line}: ", etc.path("config.toml").display());
        assert!(
            e.lines().any(|l| l.starts_with(&prefix) && l.contains(want)),
            "want {prefix}…{want}\ngot {e}\nin\n{text}"
        );
    }
}

#[cfg(unix)]
#[test]
fn a_token_file_readable_by_others_is_refused() {
    let etc = Etc::new();
    etc.private_file("nas.token", "append-token-of-the-agent\n");
    set_mode(&etc.path("nas.token"), 0o644);
    let text = MINIMAL
        .replace("url = \"/mnt/nas/arka\"", "url = \"arka+https://nas/clinic\"\ntoken_file = \"/etc/arka/nas.token\"");
    let e = etc.error(&text);
    assert!(e.contains(":5: target #1: token_file: ") && e.contains("chmod 600"), "{e}");
}

/// Any PEM certificate does for a CA file's form.
use crate::store::server::options::tests::CERT as CA_PEM;

#[test]
fn a_token_opens_the_status_page_to_the_network() {
    let etc = Etc::new();
    etc.private_file("status.token", "t0ken");
    let text = MINIMAL.replace("bind = \"127.0.0.1:8765\"", "bind = \"[::]:8765\"\ntoken_file = \"status.token\"");
    let c = etc.load(&text).unwrap();
    assert_eq!(c.status.bind, "[::]:8765".parse().unwrap());
    assert!(etc.load(&MINIMAL.replace("127.0.0.1:8765", "[::1]:8765")).is_ok(), "IPv6 loopback needs no token");
}

/// Windows spellings reach the paths unchanged: drive letters and UNC shares as
/// targets and sources, and (on Unix, where it is a relative name in the config's
/// folder) a drive-letter agent key.
#[test]
fn windows_paths_are_accepted_as_written() {
    let etc = Etc::new();
    let key_name = r"C:\ProgramData\arka\agent.key";
    if cfg!(unix) {
        etc.private_file(key_name, &arka_proto::AgentKey::generate().to_file_text());
    }
    let text = r#"agent_key = 'C:\ProgramData\arka\agent.key'
state_dir = "C:\\ProgramData\\arka\\state"
[[target]]
url = '\\nas\share\arka'
[[target]]
url = "D:\\arka"
[[source]]
name = "imaging"
kind = "files"
paths = ['D:\Imaging', '\\xray-pc\RVG']
schedule = "daily 19:00"
[[source]]
name = "mssql"
kind = "command"
command = '''sqlcmd -S .\SQLEXPRESS -Q "BACKUP DATABASE clinic TO DISK = N'C:\dump.bak' WITH COPY_ONLY"'''
schedule = "mon-fri 20:00"
"#;
    let c = etc.load(text);
    if !cfg!(unix) {
        return;
    }
    let c = c.unwrap();
    assert_eq!(c.agent_key, etc.path(key_name));
    assert_eq!(c.targets[0].location, Location::Local(PathBuf::from(r"\\nas\share\arka")));
    assert_eq!(c.targets[1].location, Location::Local(PathBuf::from(r"D:\arka")));
    let SourceKind::Files { paths, .. } = &c.sources[0].kind else { panic!() };
    assert_eq!(paths, &[PathBuf::from(r"D:\Imaging"), PathBuf::from(r"\\xray-pc\RVG")]);
    assert_eq!(c.sources[0].rpo, Duration::from_secs(26 * 3600), "daily: a day and two hours");
    assert_eq!(c.sources[1].rpo, Duration::from_secs(74 * 3600), "mon-fri: the weekend and two hours");
}

#[test]
fn keep_rules_replace_the_default_policy() {
    let etc = Etc::new();
    let c =
        etc.load(&format!("{MINIMAL}[maintenance]\nkeep_last = 10\nkeep_daily = 7\nkeep_weekly = \"8w\"\n")).unwrap();
    let p = c.maintenance.retention;
    assert_eq!((p.last, p.daily, p.weekly), (Some(10), Some(Keep::Count(7)), Some(Keep::Within(8 * 7 * 86_400))));
    assert_eq!((p.within, p.hourly, p.monthly, p.yearly), (None, None, None, None));
}

#[test]
fn an_unreadable_config_file_is_named() {
    let e = load(Path::new("/nonexistent/arka/agent.toml")).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(e.to_string().starts_with("cannot read the config file /nonexistent/arka/agent.toml: "), "{e}");
}

#[test]
fn default_paths_follow_the_platform() {
    if cfg!(windows) {
        assert_eq!(default_config_path(), PathBuf::from(r"C:\ProgramData\arka\agent.toml"));
    } else {
        assert_eq!(default_config_path(), PathBuf::from("/etc/arka/agent.toml"));
        assert_eq!(default_state_dir(), PathBuf::from("/var/lib/arka"));
    }
}

#[test]
fn pinned_recipients_are_checked_and_a_secret_key_among_them_is_not_printed() {
    let etc = Etc::new();
    let owner = arka_proto::RecoveryIdentities::generate().recipients().remove(0);
    let cfg = etc.load(&format!("recipients = [{owner:?}]\n{MINIMAL}")).unwrap();
    assert_eq!(cfg.recipients, Some(vec![owner]));
    assert_eq!(etc.load(MINIMAL).unwrap().recipients, None);
    let secret = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
    let e = etc.error(&format!("recipients = [{secret:?}]\n{MINIMAL}"));
    assert!(e.contains(":1: recipients:") && e.contains("SECRET key"), "{e}");
    assert!(!e.contains("QQQQ"), "the secret key was printed: {e}");
}

/// #15 point 6: the owner's recovery identity must never be the agent key, in either
/// form, and the refusal never prints it.
#[test]
fn a_recovery_identity_given_as_agent_key_is_refused_without_being_printed() {
    let etc = Etc::new();
    let identity = arka_proto::RecoveryIdentities::generate();
    let secret = identity.to_file_text();
    let line = secret.lines().find(|l| l.starts_with("AGE-SECRET-KEY-")).unwrap().to_string();
    for content in [secret.clone(), line.to_lowercase(), "age-encryption.org/v1\n-> scrypt abc\n".to_string()] {
        etc.private_file("agent.key", &content);
        let e = etc.error(MINIMAL);
        assert!(e.contains("holds a recovery identity") && e.contains("must never be on the clinic server"), "{e}");
        assert!(e.contains("arka init --agent-key-out") && e.contains("ARKA-AGENT-KEY-1-"), "{e}");
        assert!(!e.to_lowercase().contains(&line.to_lowercase()[16..]), "printed the key: {e}");
    }
    etc.private_file("agent.key", "not a key\n");
    assert!(etc.error(MINIMAL).contains("not an arka agent key"));
}

/// #15 point 6: values that overflowed, or switched monitoring off in effect, are refused
/// with the limit.
#[test]
fn absurd_schedules_rpos_and_timeouts_are_refused_with_the_limit() {
    let etc = Etc::new();
    let edit = |line: usize, with: &str| {
        let mut lines: Vec<&str> = MINIMAL.lines().collect();
        lines[line - 1] = with;
        lines.join("\n") + "\n"
    };
    let cases = [
        (edit(17, "schedule = \"every 99999999999999999999d\""), "a number is missing"),
        (edit(17, "schedule = \"every 9999999999999d\""), "too long (at most 3650d)"),
        (edit(17, "schedule = \"every 32d\""), "at most 31d"),
        (edit(11, "schedule = \"every 1h\"\nrpo = \"100000d\""), "too long"),
        (edit(11, "schedule = \"every 1h\"\nrpo = \"93d\""), "use at most 92d"),
        (edit(12, "watch = true\nquiet_period = \"2d\""), "quiet_period = 2d: use 0s to 1d"),
        (edit(17, "schedule = \"every 1h\"\ntimeout = \"30s\""), "timeout = 30s: use 1m to 7d"),
        (edit(17, "schedule = \"every 1h\"\ntimeout = \"8d\""), "timeout = 8d: use 1m to 7d"),
    ];
    for (text, want) in &cases {
        let e = etc.error(text);
        assert!(e.contains(want), "want {want}\ngot {e}\nin\n{text}");
    }
    let ok = edit(11, "schedule = \"every 31d\"\nrpo = \"92d\"");
    etc.load(&ok).unwrap();
}

/// #15 point 6: a grace period too short for the backups that may run meanwhile.
#[test]
fn a_prune_grace_below_two_hours_is_refused_and_says_why() {
    let etc = Etc::new();
    for grace in ["0s", "90m"] {
        let e = etc.error(&format!("{MINIMAL}[maintenance]\nprune = \"daily 03:00\"\nprune_grace = \"{grace}\"\n"));
        assert!(e.contains("at least 2h while backups can run") && e.contains("not yet indexed"), "{e}");
    }
    let e = etc.error(&format!("{MINIMAL}[maintenance]\nprune_grace = \"91d\"\n"));
    assert!(e.contains("at most 90d"), "{e}");
    let c = etc.load(&format!("{MINIMAL}[maintenance]\nprune = \"daily 03:00\"\nprune_grace = \"2h\"\n")).unwrap();
    assert_eq!(c.maintenance.prune_grace, Duration::from_secs(7200));
}

/// #15 point 7: a source or dump name becomes a file name in the snapshot; `/` and `..`
/// made trees that restore refused.
#[test]
fn source_and_dump_names_that_are_not_one_plain_file_name_are_refused() {
    let etc = Etc::new();
    for bad in ["..", ".", "db/../x", "a/b", "", "ł", &"x".repeat(65)] {
        let text = MINIMAL.replace("name = \"clinic-db\"", &format!("name = {bad:?}"));
        assert!(etc.error(&text).contains("is not valid: use 1 to 64 letters"), "{bad:?} accepted");
        let text = MINIMAL.replace("name = \"clinic-db\"", &format!("name = \"db\"\ndump_name = {bad:?}"));
        assert!(etc.error(&text).contains("dump_name"), "{bad:?} accepted as dump_name");
    }
    let text = MINIMAL.replace("name = \"clinic-db\"", "name = \"..db_2.sql\"");
    etc.load(&text).unwrap();
}

/// `dump_debug_log` is off by default, and on, names a file in the state folder.
#[test]
fn the_dump_debug_log_is_off_unless_asked_for() {
    let etc = Etc::new();
    assert_eq!(etc.load(MINIMAL).unwrap().dump_debug_log, None);
    let c = etc.load(&format!("dump_debug_log = true\n{MINIMAL}")).unwrap();
    assert_eq!(c.dump_debug_log, Some(PathBuf::from("/var/lib/arka/dump-debug.log")));
}
