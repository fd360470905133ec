//! `[[target]]`: where backups go, an arka-server target's token file, pin and CA, and
//! the bandwidth limits that pace what the agent sends to and reads from it.

use serde::Deserialize;
use toml::Spanned;

use super::{nonempty, Validator};
use crate::store::limit::{parse_rate, FullSpeedHours};
use crate::store::server::{check_ca_pem, parse_pin, Token};
use crate::store::{Limits, Location, ServerOptions};

#[derive(Clone, Debug)]
pub struct Target {
    /// `name`, or the URL when none is given.
    pub name: String,
    pub url: String,
    pub location: Location,
    /// An arka-server target's token file, pin and CA (empty for other targets).
    pub server: ServerOptions,
    /// `limit_upload`, `limit_download` and `full_speed_hours`; clones share the buckets,
    /// so every store opened for this target keeps to them together.
    pub limits: Limits,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTarget {
    url: Spanned<String>,
    name: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
    cert_sha256: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
    limit_upload: Option<Spanned<String>>,
    limit_download: Option<Spanned<String>>,
    full_speed_hours: Option<Spanned<String>>,
}

impl Validator<'_> {
    pub(super) fn targets(&mut self, raw: &[Spanned<RawTarget>]) -> Option<Vec<Target>> {
        let mut out = Vec::new();
        let mut ok = true;
        for t in raw {
            let location = self.check(&t.get_ref().url, |u| Location::parse(u).map_err(|e| format!("url: {e}")));
            let name = match &t.get_ref().name {
                Some(n) => self.check(n, |n| nonempty(n, "name").map(|_| n.clone())),
                None => Some(t.get_ref().url.get_ref().clone()),
            };
            let server = self.server_options(t.get_ref(), location.as_ref());
            let limits = self.limits(t.get_ref());
            match (location, name, server, limits) {
                (Some(location), Some(name), Some(server), Some(limits)) => {
                    if out.iter().any(|o: &Target| o.name == name) {
                        self.fail(t.span(), format!("a second target named {name:?}: give each target its own name"));
                        ok = false;
                    }
                    let url = t.get_ref().url.get_ref().clone();
                    out.push(Target { name, url, location, server, limits });
                }
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// `limit_upload` and `limit_download` (rates such as "2 MiB/s"), and `full_speed_hours`
    /// ("20:00-06:00", local time), which lifts them and so means nothing without one.
    fn limits(&mut self, t: &RawTarget) -> Option<Limits> {
        let mut rate = |v: &Option<Spanned<String>>, key: &str| match v {
            Some(v) => self.check(v, |r| parse_rate(r).map_err(|e| format!("{key}: {e}"))).map(Some),
            None => Some(None),
        };
        let (upload, download) = (rate(&t.limit_upload, "limit_upload"), rate(&t.limit_download, "limit_download"));
        let hours = match &t.full_speed_hours {
            None => Some(None),
            Some(h) if t.limit_upload.is_none() && t.limit_download.is_none() => {
                self.fail(
                    h.span(),
                    "full_speed_hours lifts limit_upload and limit_download, and this target has neither: \
                     add a limit (e.g. limit_upload = \"2 MiB/s\") or remove full_speed_hours"
                        .into(),
                );
                None
            }
            Some(h) => {
                self.check(h, |h| FullSpeedHours::parse(h).map_err(|e| format!("full_speed_hours: {e}"))).map(Some)
            }
        };
        Some(Limits::new(upload?, download?, hours?))
    }

    /// `token_file`, `cert_sha256` and `ca_file`: only for an arka-server URL; the token
    /// file private and holding a token, the pin 64 hex digits, the CA file PEM.
    fn server_options(&mut self, t: &RawTarget, location: Option<&Location>) -> Option<ServerOptions> {
        let keys = [("token_file", &t.token_file), ("cert_sha256", &t.cert_sha256), ("ca_file", &t.ca_file)];
        if !matches!(location, Some(Location::Server { .. })) {
            let mut ok = true;
            for (key, value) in keys {
                if let (Some(v), Some(_)) = (value, location) {
                    self.fail(
                        v.span(),
                        format!("{key} applies only to an arka-server target (url = \"arka+https://…\")"),
                    );
                    ok = false;
                }
            }
            return ok.then(ServerOptions::default);
        }
        let token_file = match &t.token_file {
            Some(f) => {
                let path = self.secret_path(f, "token_file")?;
                let text = std::fs::read_to_string(&path);
                let check = text.map_err(|e| e.to_string()).and_then(|t| Token::new(&t).map(|_| ()));
                self.check(f, |_| check.map_err(|e| format!("token_file: {}: {e}", path.display())))?;
                Some(path)
            }
            None => None,
        };
        let cert_sha256 = match &t.cert_sha256 {
            Some(p) => {
                Some(self.check(p, |p| parse_pin(p).map(|_| p.clone()).map_err(|e| format!("cert_sha256: {e}")))?)
            }
            None => None,
        };
        let ca_file = match &t.ca_file {
            Some(f) => {
                let path = self.resolve(f.get_ref());
                let pem = std::fs::read(&path).map_err(|e| format!("ca_file: cannot read {}: {e}", path.display()));
                self.check(f, |_| {
                    pem.and_then(|p| check_ca_pem(&p).map_err(|e| format!("ca_file: {}: {e}", path.display())))
                })?;
                Some(path)
            }
            None => None,
        };
        Some(ServerOptions { token_file, cert_sha256, ca_file })
    }
}
