//! The printable paper-key sheet (`arka keygen --paper-html FILE`): one self-contained
//! HTML page, no script and nothing fetched, so it prints the same from any browser, years
//! from now, on a machine that is offline. It holds the secret, so it is written mode 600.

use arka_proto::status::esc;

/// What goes on the sheet.
pub(super) struct Sheet<'a> {
    /// Each line's groups of four and its check characters, as `PaperKey::lines` gives them.
    pub lines: &'a [(Vec<String>, String)],
    /// The identity as age writes it (`AGE-SECRET-KEY-1…`), which the QR code holds.
    pub age_line: &'a str,
    pub qr_svg: &'a str,
    pub recipient: &'a str,
    /// When the key was made, as the sheet shows it.
    pub made: &'a str,
    pub repo_id: Option<&'a str>,
}

const CSS: &str = "\
@page{size:A4;margin:14mm}\
*{box-sizing:border-box}\
body{margin:0 auto;max-width:182mm;padding:6mm;font:11pt/1.4 system-ui,'Segoe UI',Roboto,'Liberation Sans',\
'DejaVu Sans',sans-serif;color:#000;background:#fff}\
h1{font-size:19pt;margin:0 0 2mm}\
h2{font-size:12.5pt;margin:6mm 0 2mm}\
.warn{border:2px solid #000;border-radius:3mm;padding:3mm 4mm;margin:3mm 0;font-weight:600}\
table.key{border-collapse:collapse;margin:2mm 0}\
table.key td,table.key th{padding:1.5mm 2.6mm;text-align:left}\
table.key th{font-size:9pt;font-weight:600;color:#444}\
table.key td{font:600 21pt/1.2 'DejaVu Sans Mono','Liberation Mono',Consolas,monospace;letter-spacing:.12em}\
table.key td.check{border-left:2px solid #000;padding-left:4mm}\
table.key tbody th{font-size:13pt;color:#000}\
.row{display:flex;gap:7mm;align-items:flex-start}\
.qr svg{width:48mm;height:48mm;display:block}\
.qr figcaption{font-size:8.5pt;max-width:48mm;margin-top:1mm}\
figure{margin:0}\
code{font-family:'DejaVu Sans Mono','Liberation Mono',Consolas,monospace;overflow-wrap:anywhere}\
.age{font-size:7.5pt}\
dl{margin:0;display:grid;grid-template-columns:max-content 1fr;gap:2mm 4mm;flex:1}\
dt{font-weight:600}dd{margin:0}\
.blank{display:inline-block;min-width:70mm;border-bottom:1px solid #000;height:1.3em}\
.write{border-bottom:1px solid #000;height:9mm}\
ol{margin:1mm 0;padding-left:6mm}li{margin:1mm 0}\
footer{margin-top:6mm;font-size:8.5pt;color:#444}";

/// The sheet as one HTML document.
pub(super) fn render(s: &Sheet) -> String {
    let mut rows = String::new();
    for (i, (groups, check)) in s.lines.iter().enumerate() {
        rows.push_str(&format!("<tr><th scope=\"row\">{}</th>", i + 1));
        for g in groups {
            rows.push_str(&format!("<td>{}</td>", esc(g)));
        }
        rows.push_str(&format!("<td class=\"check\">{}</td></tr>", esc(check)));
    }
    let groups = s.lines.first().map_or(0, |(g, _)| g.len());
    let repo_id = match s.repo_id {
        Some(id) => format!("<code>{}</code>", esc(id)),
        None => "<span class=\"blank\"></span>".into(),
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>arka recovery key (paper copy)</title><style>{CSS}</style></head><body>\
<h1>Recovery key for the clinic's backups</h1>\
<p class=\"warn\">Secret. Whoever holds this sheet can read every backup, patient records included. Keep it \
in the safe. Do not photograph, scan or copy it except to make another copy kept as safely.</p>\
<h2>The key, to type back</h2>\
<table class=\"key\"><thead><tr><th>line</th><th colspan=\"{groups}\">groups</th><th>check</th></tr></thead>\
<tbody>{rows}</tbody></table>\
<div class=\"row\"><figure class=\"qr\">{qr}<figcaption>The same key as a QR code, for a scanner on a trusted, \
offline computer.</figcaption></figure>\
<dl><dt>Public recipient</dt><dd><code>{recipient}</code><br><small>not secret: what backups are encrypted \
to</small></dd>\
<dt>Made on</dt><dd>{made}</dd>\
<dt>Repository ID</dt><dd>{repo_id}</dd>\
<dt>As age writes it</dt><dd><code class=\"age\">{age}</code></dd></dl></div>\
<h2>Copies of this key are kept at</h2><div class=\"write\"></div><div class=\"write\"></div>\
<div class=\"write\"></div>\
<h2>Typing it back</h2><ol>\
<li>On a trusted computer (not the clinic server), run the restore with <code>--identity -</code>, e.g. \
<code>arka restore --repo REPO --identity - latest --target DIR</code>.</li>\
<li>When asked, type each line above with its check characters at the end. Spaces, dashes and upper or \
lower case do not matter; O is read as 0, and I or L as 1.</li>\
<li>A typo is named by its line and group (\u{201c}line 3, group 2 does not match its checksum\u{201d}): \
compare that group with this sheet and type the line again.</li>\
<li>Or paste the line under \u{201c}As age writes it\u{201d}, or scan the QR code: any tool that reads \
age identities can use it.</li></ol>\
<footer>arka paper key, format {format}. Docs: OPERATIONS.md \u{a7}2, \u{201c}Paper key\u{201d}.</footer>\
</body></html>\n",
        qr = s.qr_svg,
        recipient = esc(s.recipient),
        made = esc(s.made),
        age = esc(s.age_line),
        format = arka_proto::paper::FORMAT,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> String {
        let lines = vec![
            (vec!["1ABC".to_string(), "DEFG".into()], "XYZ".to_string()),
            (vec!["HJKM".to_string(), "NPQR".into()], "TVW".to_string()),
        ];
        render(&Sheet {
            lines: &lines,
            age_line: "AGE-SECRET-KEY-1SAMPLE",
            qr_svg: "<svg viewBox=\"0 0 1 1\"></svg>",
            recipient: "age1sample",
            made: "2026-05-04",
            repo_id: None,
        })
    }

    #[test]
    fn the_sheet_holds_every_group_the_qr_and_the_facts_and_nothing_external() {
        let html = sample();
        for needle in [
            "<td>1ABC</td><td>DEFG</td><td class=\"check\">XYZ</td>",
            "<th scope=\"row\">2</th><td>HJKM</td>",
            "<svg viewBox",
            "age1sample",
            "2026-05-04",
            "AGE-SECRET-KEY-1SAMPLE",
            "<span class=\"blank\"></span>",
            "--identity -",
        ] {
            assert!(html.contains(needle), "the sheet lacks {needle:?}:\n{html}");
        }
        assert_eq!(html.matches("class=\"write\"").count(), 3, "three lines for where copies are kept");
        for external in ["<script", "src=", "href=", "url(", "@import"] {
            assert!(!html.contains(external), "the sheet loads or runs something ({external}):\n{html}");
        }
    }

    #[test]
    fn a_given_repository_id_replaces_the_blank() {
        let lines = vec![(vec!["1ABC".to_string()], "XYZ".to_string())];
        let html = render(&Sheet {
            lines: &lines,
            age_line: "AGE",
            qr_svg: "",
            recipient: "age1",
            made: "today",
            repo_id: Some("3f9a12c4"),
        });
        assert!(html.contains("<code>3f9a12c4</code>") && !html.contains("class=\"blank\""));
    }
}
