//! The status page (`GET /`): one server-rendered HTML page a receptionist can read at a
//! glance. A verdict first, in words and colour; then each source, where the copies are,
//! and maintenance. No JavaScript (the CSP forbids it), inline CSS, refreshes every minute,
//! readable on a phone. Every string from the report goes through [`esc`].

use std::fmt::Write;

use arka_proto::status::{
    esc, human_bytes, human_duration, thousands, AgentStatus, SourceKind, SourceState, TargetRole,
};
use arka_proto::{SourceStatus, TargetStatus};
use jiff::tz::TimeZone;
use jiff::Timestamp;

use arka_proto::html::{Clock, WallTime, BASE_CSS};

/// This page's own rules, after [`BASE_CSS`].
const STYLE: &str = "\
main{max-width:1100px;margin:0 auto;padding:16px}\
.verdict ul{margin:12px 0 0;padding-left:1.3em;font-size:1.15em}\
.verdict li{margin:4px 0}\
.notes{background:#fff4d6;border:1px solid #e0b44c;border-radius:10px;padding:10px 16px;margin:10px 0}\
.notes ul{margin:4px 0;padding-left:1.3em}\
.meta{color:#555;margin:6px 2px 18px}\
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(330px,100%),1fr));gap:14px}\
.card{background:#fff;border-radius:12px;padding:14px 18px;box-shadow:0 1px 3px rgba(0,0,0,.12)}\
.card h3{margin:0 0 8px;font-size:1.2em;display:flex;justify-content:space-between;gap:8px;\
align-items:center;flex-wrap:wrap;overflow-wrap:anywhere}\
.card.bad{border-left:8px solid #b3261e}.card.good{border-left:8px solid #1b7f3b}\
.card.busy{border-left:8px solid #1f5fbf}.card.idle{border-left:8px solid #8a8a8a}.card.warn{border-left:8px solid #9a6700}\
th,td{text-align:left;vertical-align:top;padding:5px 0;border-top:1px solid #eee}\
th{font-weight:600;color:#444;width:1%;white-space:nowrap;padding-right:14px}\
.badge.good{background:#1b7f3b}.badge.bad{background:#b3261e}.badge.busy{background:#1f5fbf}\
.badge.idle{background:#6b6b6b}.badge.warn{background:#9a6700}\
.sub{color:#555;margin:-4px 0 8px}\
code{font:.95em ui-monospace,'DejaVu Sans Mono',monospace}\
form.now{margin:10px 0 0}.all{margin:14px 0}\
button{font:inherit;padding:6px 14px;border-radius:8px;border:1px solid #1f5fbf;background:#1f5fbf;color:#fff;cursor:pointer}\
svg.strip,svg.plot{display:block;max-width:100%;height:auto}\
@media (max-width:600px){th{white-space:normal;width:38%}.verdict h1{font-size:1.6em}.verdict{padding:16px 18px}main{padding:10px}}";

/// What the page's "back up now" buttons post: the process's anti-forgery secret, and the
/// access token the page was opened with.
pub(super) struct Forms<'a> {
    pub csrf: &'a str,
    pub token: Option<&'a str>,
}

/// The whole page for one report, in the agent's local time zone; without `forms`, no
/// buttons.
pub(super) fn render(st: &AgentStatus, forms: Option<&Forms>) -> String {
    render_in(st, &TimeZone::system(), forms)
}

pub(super) fn render_in(st: &AgentStatus, tz: &TimeZone, forms: Option<&Forms>) -> String {
    let wall = |ns| wall_time(ns, tz);
    let clock = Clock { now_ns: st.now_ns, wall: &wall };
    let problems = st.problems();
    let warnings = st.warnings();
    let mut h = String::with_capacity(16 * 1024);
    let title = if problems.is_empty() { "Backups OK" } else { "Backups need attention" };
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"60\">\
         <title>{title} \u{2014} {}</title><style>{BASE_CSS}{STYLE}</style></head>\n<body><main>\n",
        esc(&st.hostname)
    );
    verdict(&mut h, &problems);
    if !warnings.is_empty() {
        h.push_str("<div class=\"notes\"><strong>Also worth a look</strong> (backups continue meanwhile):<ul>");
        for w in &warnings {
            let _ = write!(h, "<li>{}</li>", esc(w));
        }
        h.push_str("</ul></div>\n");
    }
    let _ = writeln!(
        h,
        "<p class=\"meta\">Computer <strong>{}</strong> \u{b7} checked {} \u{b7} this page updates every minute</p>",
        esc(&st.hostname),
        esc(&clock.at(st.now_ns))
    );

    h.push_str("<h2>What is backed up</h2>\n<div class=\"grid\">\n");
    if st.sources.is_empty() {
        h.push_str("<p>No sources are configured.</p>\n");
    }
    let today = Timestamp::from_nanosecond(i128::from(st.now_ns)).map(|t| t.to_zoned(tz.clone()).date()).ok();
    for s in &st.sources {
        source_card(&mut h, s, st, &clock, today);
        if let Some(f) = forms {
            button(&mut h, f, Some(&s.name));
        }
        h.push_str("</section>\n");
    }
    if let (Some(f), true) = (forms, st.sources.len() > 1) {
        h.push_str("<div class=\"all\">");
        button(&mut h, f, None);
        h.push_str("</div>");
    }
    h.push_str("</div>\n<h2>Where the backups are kept</h2>\n<div class=\"grid\">\n");
    if st.targets.is_empty() {
        h.push_str("<p>No targets are configured.</p>\n");
    }
    for t in &st.targets {
        target_card(&mut h, t, &clock);
    }
    h.push_str("</div>\n<h2>Checks and clean-up</h2>\n<div class=\"grid\">\n");
    maintenance_card(&mut h, st, &clock);
    let _ = write!(
        h,
        "</div>\n<footer>arka {} \u{b7} the backup agent has been running since {}</footer>\n</main></body></html>\n",
        esc(&st.version),
        esc(&clock.at(st.started_ns))
    );
    h
}

fn verdict(h: &mut String, problems: &[String]) {
    if problems.is_empty() {
        h.push_str(
            "<header class=\"verdict ok\"><h1>\u{2713} All backups are up to date</h1>\
             <p>Nothing needs to be done.</p></header>\n",
        );
        return;
    }
    h.push_str("<header class=\"verdict bad\"><h1>\u{26a0} Backups need attention</h1><ul>");
    for p in problems {
        let _ = write!(h, "<li>{}</li>", esc(p));
    }
    h.push_str("</ul><p>Please tell your IT contact.</p></header>\n");
}

/// A "back up now" form for one source or (`None`) all of them.
fn button(h: &mut String, f: &Forms, source: Option<&str>) {
    let action = match f.token {
        Some(t) => format!("run-now?token={}", super::run_now::urlencode(t)),
        None => "run-now".to_string(),
    };
    let (field, label) = match source {
        Some(name) => (format!("<input type=\"hidden\" name=\"source\" value=\"{}\">", esc(name)), "Back up now"),
        None => (String::new(), "Back up everything now"),
    };
    let _ = write!(
        h,
        "<form method=\"post\" action=\"{}\" class=\"now\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         {field}<button type=\"submit\">{label}</button></form>",
        esc(&action),
        esc(f.csrf)
    );
}

/// A source's card, left open for its button.
fn source_card(h: &mut String, s: &SourceStatus, st: &AgentStatus, clock: &Clock, today: Option<jiff::civil::Date>) {
    let past = s.past_rpo(st.now_ns, st.started_ns);
    let (class, badge) = match s.state {
        SourceState::Ok => ("good", "Up to date"),
        SourceState::Running if past => ("bad", "Backing up now (late)"),
        SourceState::Running => ("busy", "Backing up now"),
        SourceState::Late => ("bad", "Late"),
        SourceState::Failed => ("bad", "Failed"),
        SourceState::Never if past => ("bad", "Never backed up"),
        SourceState::Never => ("idle", "Waiting for first backup"),
    };
    let what = match s.kind {
        SourceKind::Files => "Files",
        SourceKind::Command => "Database dump",
    };
    let _ = write!(
        h,
        "<section class=\"card {class}\"><h3><span>{}</span><span class=\"badge {class}\">{badge}</span></h3>\
         <p class=\"sub\">{what} \u{b7} {} \u{b7} late after {}</p><table>",
        esc(&s.name),
        esc(&s.schedule),
        esc(&human_duration(s.rpo_secs)),
    );
    let last = match s.last_success_ns {
        Some(t) if past => format!("<span class=\"err\">{}</span>", clock.relative(t)),
        Some(t) => clock.relative(t),
        None => "never".into(),
    };
    row(h, "Last backup", &last);
    if s.state == SourceState::Running {
        if let Some(t) = s.last_attempt_ns {
            row(h, "Running since", &clock.relative(t));
        }
    } else if let Some(t) = s.next_run_ns {
        row(h, "Next backup", &clock.relative(t));
    }
    if let Some(bytes) = s.last_bytes {
        let new = s.last_bytes_new.map(|n| format!(", {} new", human_bytes(n))).unwrap_or_default();
        row(h, "Size", &esc(&format!("{}{new}", human_bytes(bytes))));
    }
    if let (SourceKind::Files, Some(files)) = (s.kind, s.files) {
        row(h, "Files", &esc(&thousands(files)));
    }
    if let Some(ms) = s.last_duration_ms {
        let took = if ms < 1_000 { "under a second".to_string() } else { human_duration(ms / 1_000) };
        row(h, "Took", &esc(&took));
    }
    if let Some(id) = &s.last_snapshot {
        row(h, "Snapshot", &format!("<code>{}</code>", esc(id)));
    }
    if let Some(e) = &s.last_error {
        row(h, "Last error", &format!("<span class=\"err\">{}</span>", esc(e)));
    }
    if let Some((newest, targets)) = s.protected_up_to() {
        let older: Vec<String> = s
            .copies
            .iter()
            .filter(|c| c.newest_ns < newest)
            .map(|c| format!("{}: up to {}", esc(&c.target), clock.at(c.newest_ns)))
            .collect();
        let mut text = format!("up to {}, on {}", clock.at(newest), esc(&targets.join(", ")));
        if !older.is_empty() {
            text.push_str(&format!(" <small>({})</small>", older.join("; ")));
        }
        row(h, "Protected", &text);
    }
    if let Some(today) = today {
        super::pictures::source_history(h, s, today);
    }
    h.push_str("</table>");
}

fn target_card(h: &mut String, t: &TargetStatus, clock: &Clock) {
    let (class, badge) = match (t.reachable, t.backlog_snapshots) {
        (false, _) => ("bad", "Cannot be reached"),
        (true, 0) => ("good", "Up to date"),
        (true, _) => ("busy", "Copying"),
    };
    let role = match t.role {
        TargetRole::Primary => "main copy (backups go here first)",
        TargetRole::Replica => "extra copy (copied from the main one)",
    };
    let _ = write!(
        h,
        "<section class=\"card {class}\"><h3><span>{}</span><span class=\"badge {class}\">{badge}</span></h3><table>",
        esc(&t.name)
    );
    row(h, "Role", role);
    row(h, "Location", &format!("<code>{}</code>", esc(&t.url_display)));
    let last = match (t.last_sync_ns, t.role) {
        (Some(ts), _) => clock.relative(ts),
        (None, TargetRole::Primary) => "no backup yet".into(),
        (None, TargetRole::Replica) => "not copied yet".into(),
    };
    row(h, if t.role == TargetRole::Primary { "Last backup" } else { "Last copy" }, &last);
    if t.role == TargetRole::Replica {
        let waiting = if t.backlog_snapshots == 0 {
            "nothing".to_string()
        } else {
            let n = t.backlog_snapshots;
            format!("{n} backup{} ({})", if n == 1 { "" } else { "s" }, human_bytes(t.backlog_bytes))
        };
        row(h, "Waiting to be copied", &esc(&waiting));
    }
    if let Some(b) = t.stored_bytes {
        row(h, "Stored", &esc(&human_bytes(b)));
    }
    for c in &t.catch_up {
        let text = format!(
            "backups made on {} since {} are copied here once it is reachable",
            esc(&c.from),
            clock.at(c.since_ns)
        );
        row(h, "Catching up", &text);
    }
    if let Some(e) = &t.last_error {
        row(h, "Last error", &format!("<span class=\"err\">{}</span>", esc(e)));
    }
    h.push_str("</table></section>\n");
}

fn maintenance_card(h: &mut String, st: &AgentStatus, clock: &Clock) {
    let m = &st.maintenance;
    let (class, badge) = match (m.damage_found(), m.last_verify_ns) {
        (true, _) => ("bad", "Damage found"),
        (false, _) if !m.flagged_snapshots.is_empty() => ("warn", "Suspicious snapshots"),
        (false, Some(_)) => ("good", "No damage found"),
        (false, None) => ("idle", "Not checked yet"),
    };
    let _ = write!(
        h,
        "<section class=\"card {class}\"><h3><span>Checks of the stored backups</span>\
         <span class=\"badge {class}\">{badge}</span></h3><table>"
    );
    let never = |t: Option<i64>, none: &str| t.map_or_else(|| none.to_string(), |t| clock.relative(t));
    row(h, "Last check", &never(m.last_verify_ns, "not yet"));
    if m.verify_damage > 0 {
        row(h, "Damaged data", &format!("<span class=\"err\">{}</span>", m.verify_damage));
    }
    if m.vanished_snapshots > 0 {
        let text = format!("{} deleted outside arka", m.vanished_snapshots);
        row(h, "Backups gone", &format!("<span class=\"err\">{}</span>", esc(&text)));
    }
    for f in &m.flagged_snapshots {
        row(h, "Suspicious snapshot", &esc(f));
    }
    if let Some(note) = &m.damage_note {
        let shown = if note.contains("not healable") {
            format!("<span class=\"err\">{}</span>", esc(note))
        } else {
            esc(note).to_string()
        };
        row(h, "Damage", &shown);
    }
    if let Some(t) = m.next_verify_ns {
        row(h, "Next check", &clock.relative(t));
    }
    let restored = m.last_restore_ns.map_or_else(
        || "none recorded yet: restore something once a month to know it works".to_string(),
        |t| clock.relative(t),
    );
    row(h, "Last restore test", &restored);
    row(h, "Old backups removed", &never(m.last_forget_ns, "not yet"));
    row(h, "Space reclaimed", &never(m.last_prune_ns, "not yet"));
    if let Some(t) = m.next_forget_ns.into_iter().chain(m.next_prune_ns).min() {
        row(h, "Next clean-up", &clock.relative(t));
    }
    if let Some(e) = &m.deletion_refused {
        row(h, "Not running", &format!("<span class=\"err\">{}</span>", esc(e)));
    }
    if let Some(e) = &m.last_error {
        row(h, "Last error", &format!("<span class=\"err\">{}</span>", esc(e)));
    }
    h.push_str("</table></section>\n");
}

/// One table row; `value_html` must already be escaped.
pub(super) fn row(h: &mut String, label: &str, value_html: &str) {
    let _ = write!(h, "<tr><th>{label}</th><td>{value_html}</td></tr>");
}

/// The viewer's wall clock in `tz`, for [`Clock`].
fn wall_time(ns: i64, tz: &TimeZone) -> Option<WallTime> {
    let t = Timestamp::from_nanosecond(i128::from(ns)).ok()?.to_zoned(tz.clone());
    Some(WallTime { year: t.year(), month: t.month(), day: t.day(), hour: t.hour(), minute: t.minute() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000_000;

    #[test]
    fn times_read_like_a_person_says_them() {
        let tz = TimeZone::UTC;
        // 2023-11-14 22:13:20 UTC
        let now = 1_700_000_000_000_000_000;
        let wall = |ns| wall_time(ns, &tz);
        let clock = Clock { now_ns: now, wall: &wall };
        assert_eq!(clock.at(now - 10 * MIN), "today 22:03");
        assert_eq!(clock.at(now - 23 * 60 * MIN), "yesterday 23:13");
        assert_eq!(clock.at(now + 120 * MIN), "tomorrow 00:13");
        assert_eq!(clock.at(now - 3 * 24 * 60 * MIN), "Sat 11 Nov 22:13");
        assert_eq!(clock.at(now - 30 * 24 * 60 * MIN), "15 Oct 22:13");
        assert_eq!(clock.at(now - 400 * 24 * 60 * MIN), "10 Oct 2022 22:13");
        assert!(clock.relative(now - 12 * MIN).starts_with("12 minutes ago <span"));
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(12_482), "12,482");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn esc_covers_markup_and_both_quotes() {
        assert_eq!(
            esc(r#"<a href="x" onclick='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
    }
}
