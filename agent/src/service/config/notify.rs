//! `[notify]`: the webhook and the e-mail sent on failures, missed RPOs and verify errors.

use serde::Deserialize;
use toml::Spanned;

use super::{nonempty, Validator, DEFAULT_SMTP_PORT};
use crate::service::notify::{EmailSettings, WebhookSettings};

/// The channels notifications go out on: the notifier's own settings, so what is checked
/// here is exactly what is sent with (secrets stay [`Secret`]s all the way).
#[derive(Clone, Debug, Default)]
pub struct Notify {
    pub webhook: Option<WebhookSettings>,
    pub email: Option<EmailSettings>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    webhook: Option<RawWebhook>,
    email: Option<RawEmail>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    url: Spanned<String>,
    secret_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEmail {
    smtp_host: Spanned<String>,
    smtp_port: Option<u16>,
    starttls: Option<bool>,
    username: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    from: Spanned<String>,
    to: Spanned<Vec<String>>,
}

impl Validator<'_> {
    pub(super) fn notify(&mut self, raw: Option<&RawNotify>) -> Option<Notify> {
        let Some(r) = raw else { return Some(Notify::default()) };
        let webhook = match &r.webhook {
            Some(w) => {
                let url = self.check(&w.url, |u| http_url(u));
                let secret = match &w.secret_file {
                    Some(s) => self.secret(s, "secret_file").map(Some),
                    None => Some(None),
                };
                Some(WebhookSettings { url: url?, secret: secret? })
            }
            None => None,
        };
        let email = match &r.email {
            Some(e) => Some(self.email(e)?),
            None => None,
        };
        Some(Notify { webhook, email })
    }

    fn email(&mut self, e: &RawEmail) -> Option<EmailSettings> {
        let smtp_host = self.check(&e.smtp_host, |h| nonempty(h, "smtp_host").map(|_| h.trim().to_string()));
        let from = self.check(&e.from, |f| mailbox(f, "from").map(|_| f.clone()));
        let to = self.check(&e.to, |to| {
            if to.is_empty() {
                return Err("to is empty: list who is told, e.g. to = [\"it@clinic.example\"]".into());
            }
            to.iter().try_for_each(|t| mailbox(t, "to")).map(|_| to.clone())
        });
        let username = e.username.as_ref().map(|u| u.get_ref().clone());
        let password = match (&e.username, &e.password_file) {
            (Some(_), Some(p)) => self.secret(p, "password_file").map(Some),
            (None, None) => Some(None),
            (Some(u), None) => {
                self.fail(u.span(), "username is set but password_file is not: set both or neither".into());
                None
            }
            (None, Some(p)) => {
                self.fail(p.span(), "password_file is set but username is not: set both or neither".into());
                None
            }
        };
        Some(EmailSettings {
            smtp_host: smtp_host?,
            smtp_port: e.smtp_port.unwrap_or(DEFAULT_SMTP_PORT),
            starttls: e.starttls.unwrap_or(true),
            username,
            password: password?,
            from: from?,
            to: to?,
        })
    }
}

fn http_url(u: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(u).map_err(|e| format!("url {u:?} is not a URL: {e}"))?;
    match parsed.scheme() {
        "http" | "https" if parsed.host().is_some() => Ok(u.to_string()),
        _ => Err(format!("url {u:?}: use an http:// or https:// URL")),
    }
}

fn mailbox(addr: &str, key: &str) -> Result<(), String> {
    let addr = addr.trim();
    let bare = addr.rsplit_once('<').map_or(addr, |(_, a)| a.trim_end_matches('>'));
    match bare.split_once('@') {
        Some((user, host)) if !user.is_empty() && (host.contains('.') || host == "localhost") => Ok(()),
        _ => Err(format!("{key}: {addr:?} is not an e-mail address")),
    }
}
