//! How the agent authenticates to an arka-server and decides to trust it: the bearer
//! token, and one of three trust modes (the platform's roots, an extra CA, or a pinned
//! leaf certificate).
//!
//! Settings come from the environment first (`ARKA_SERVER_TOKEN`, `ARKA_SERVER_TOKEN_FILE`,
//! `ARKA_SERVER_CA`, `ARKA_SERVER_CERT_SHA256`: the CLI's way), then from the
//! [`ServerOptions`] the caller passes (the agent config's `token_file`, `ca_file`,
//! `cert_sha256` of the target).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

pub const TOKEN_ENV: &str = "ARKA_SERVER_TOKEN";
pub const TOKEN_FILE_ENV: &str = "ARKA_SERVER_TOKEN_FILE";
pub const CA_ENV: &str = "ARKA_SERVER_CA";
pub const PIN_ENV: &str = "ARKA_SERVER_CERT_SHA256";

/// What the caller knows about a server target besides its URL (the agent config's keys).
/// The environment overrides each of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerOptions {
    /// A file holding the bearer token.
    pub token_file: Option<PathBuf>,
    /// Hex SHA-256 of the server certificate's DER (colons allowed, as `openssl x509
    /// -fingerprint -sha256` prints it).
    pub cert_sha256: Option<String>,
    /// A PEM file of CA certificates trusted in addition to the platform's.
    pub ca_file: Option<PathBuf>,
}

/// A bearer token; `Debug` prints `***`, and the header made from it is marked sensitive.
#[derive(Clone)]
pub struct Token(Zeroizing<String>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Token {
    /// Trims a trailing newline; refuses what cannot go in an HTTP header.
    pub fn new(text: &str) -> Result<Self, String> {
        let t = text.trim_end_matches(['\r', '\n']);
        if t.is_empty() {
            return Err("the token is empty".into());
        }
        if !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the token holds spaces or characters other than printable ASCII".into());
        }
        Ok(Self(Zeroizing::new(t.to_string())))
    }

    /// The `Authorization` header value, marked sensitive (never printed by `http`'s Debug).
    pub fn header(&self) -> reqwest::header::HeaderValue {
        let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", self.0.as_str()))
            .expect("printable ASCII is a valid header value");
        v.set_sensitive(true);
        v
    }
}

/// Whom to trust for TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// The platform's roots (webpki roots where the platform has none).
    Platform,
    /// The platform's roots plus these PEM certificates.
    ExtraCa(Vec<u8>),
    /// Exactly the leaf whose DER hashes to this; names and chains are not consulted.
    Pinned([u8; 32]),
}

/// The settings in force for one server, environment first.
#[derive(Debug)]
pub struct Resolved {
    pub token: Token,
    pub trust: Trust,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl ServerOptions {
    pub fn resolve(&self, shown: &str) -> Result<Resolved> {
        let token = match (env(TOKEN_ENV), env(TOKEN_FILE_ENV), &self.token_file) {
            (Some(t), _, _) => Token::new(&t).map_err(|e| Error::Key(format!("{TOKEN_ENV}: {e}")))?,
            (None, Some(f), _) => read_token(Path::new(&f), TOKEN_FILE_ENV)?,
            (None, None, Some(f)) => read_token(f, "token_file")?,
            (None, None, None) => {
                return Err(Error::Usage(format!(
                    "{shown} needs a token: set {TOKEN_ENV} (or {TOKEN_FILE_ENV} to a file holding it), \
                     or token_file in the agent config's [[target]]"
                )))
            }
        };
        let pin = env(PIN_ENV).map(|p| (p, PIN_ENV)).or_else(|| self.cert_sha256.clone().map(|p| (p, "cert_sha256")));
        let ca =
            env(CA_ENV).map(|p| (PathBuf::from(p), CA_ENV)).or_else(|| self.ca_file.clone().map(|p| (p, "ca_file")));
        let trust = match (pin, ca) {
            (Some((pin, from)), _) => Trust::Pinned(parse_pin(&pin).map_err(|e| Error::Usage(format!("{from}: {e}")))?),
            (None, Some((path, from))) => Trust::ExtraCa(read_ca(&path, from)?),
            (None, None) => Trust::Platform,
        };
        Ok(Resolved { token, trust })
    }
}

fn read_token(path: &Path, from: &str) -> Result<Token> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Key(format!("{from}: cannot read the token file {}: {e}", path.display())))?;
    Token::new(&text).map_err(|e| Error::Key(format!("{from}: {}: {e}", path.display())))
}

fn read_ca(path: &Path, from: &str) -> Result<Vec<u8>> {
    let pem = std::fs::read(path)
        .map_err(|e| Error::Config(format!("{from}: cannot read the CA file {}: {e}", path.display())))?;
    check_ca_pem(&pem).map_err(|e| Error::Config(format!("{from}: {}: {e}", path.display())))?;
    Ok(pem)
}

/// At least one certificate, and nothing unreadable.
pub fn check_ca_pem(pem: &[u8]) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    let mut n = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        cert.map_err(|e| format!("not a PEM certificate file: {e}"))?;
        n += 1;
    }
    if n == 0 {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(())
}

/// 64 hex digits, colons and spaces ignored, either case.
pub fn parse_pin(text: &str) -> Result<[u8; 32], String> {
    let hex: String = text.chars().filter(|c| *c != ':' && !c.is_whitespace()).collect();
    let bytes = hex.as_bytes();
    let bad = || {
        format!(
            "{text:?} is not a SHA-256 fingerprint: give the 64 hex digits that \
             `openssl x509 -in server.crt -noout -fingerprint -sha256` prints"
        )
    };
    if bytes.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).map_err(|_| bad())?;
        out[i] = u8::from_str_radix(s, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The HTTP client for one server: bounded connect and read timeouts, no redirects (a
/// redirect would carry the token elsewhere), and the chosen trust.
pub fn http_client(trust: &Trust) -> Result<reqwest::Client> {
    // Same provider as every other client of the agent; fails only if one is installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let builder = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .read_timeout(std::time::Duration::from_secs(60))
        .pool_idle_timeout(std::time::Duration::from_secs(50))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("arka/", env!("CARGO_PKG_VERSION")));
    let builder = match trust {
        Trust::Platform => builder,
        Trust::ExtraCa(pem) => {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::Config(format!("the CA file is not usable: {e}")))?;
            certs.into_iter().fold(builder, |b, c| b.add_root_certificate(c))
        }
        Trust::Pinned(sha256) => builder.tls_backend_preconfigured(pinned_tls_config(*sha256)?),
    };
    builder.build().map_err(|e| Error::Internal(format!("cannot make the HTTP client: {e}")))
}

fn pinned_tls_config(sha256: [u8; 32]) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PinnedCert::new(sha256, provider.signature_verification_algorithms);
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(config)
}

/// Accepts exactly the leaf certificate whose DER has the pinned SHA-256, whatever its
/// names, issuer or dates: the administrator vouched for that certificate itself (a
/// self-signed one on the NAS is the usual case). The handshake's signatures are still
/// checked against that certificate's key, so only the holder of its private key passes.
#[derive(Debug)]
pub struct PinnedCert {
    sha256: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedCert {
    pub fn new(sha256: [u8; 32], algorithms: WebPkiSupportedAlgorithms) -> Self {
        Self { sha256, algorithms }
    }
}

/// What the pin verifier says when the server shows another certificate. rustls prints
/// it with `Debug`, so `Debug` is the sentence too.
pub struct PinMismatch {
    pub presented: String,
}

impl std::fmt::Debug for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the server's certificate is not the pinned one (its SHA-256 is {})", self.presented)
    }
}

impl std::error::Error for PinMismatch {}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let digest = ring::digest::digest(&ring::digest::SHA256, end_entity.as_ref());
        if digest.as_ref() == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            let mismatch = PinMismatch { presented: to_hex(digest.as_ref()) };
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(mismatch)))))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;

    /// A self-signed P-256 certificate (CN=arka-test), made with the openssl CLI.
    pub(crate) const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBfjCCASWgAwIBAgIUZhZ+bejE1Vh4P8HWx2QNhjCKl0YwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJYXJrYS10ZXN0MCAXDTI2MTEyMzA4NTkwOVoYDzIxMjYxMDMw
MDg1OTA5WjAUMRIwEAYDVQQDDAlhcmthLXRlc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAR+X70ukRYoz4QNtm2chd/PjDgjyDiGXjS4HczarSLybvWbnmitRif3
NJW5RsIWkh3aVZg+wZnIHuzlCJdLLsmAo1MwUTAdBgNVHQ4EFgQU09WNntnuhFed
GGDQSYJAL0WEqjMwHwYDVR0jBBgwFoAU09WNntnuhFedGGDQSYJAL0WEqjMwDwYD
VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiB5VGnl3rboHeZoyq87AGFg
hhMPWdxzkTWtkFI2qtWQ+QIgYKSh7aSNeEl0Wj1d+8HNKAJ2IFCFq/rqXQKdS5oN
f98=
-----END CERTIFICATE-----
";
    /// As `openssl x509 -noout -fingerprint -sha256` prints it.
    const FINGERPRINT: &str =
        "B5:17:2F:BD:05:18:FF:CE:AA:E8:C1:94:37:83:D9:4C:FD:85:6B:F5:BC:87:87:1F:35:AD:5F:AA:22:D2:58:F9";

    fn verifier(pin: &str) -> PinnedCert {
        let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        PinnedCert::new(parse_pin(pin).unwrap(), algorithms)
    }

    fn verify(v: &PinnedCert, cert: &CertificateDer<'_>, name: &str) -> Result<ServerCertVerified, rustls::Error> {
        let name = ServerName::try_from(name.to_string()).unwrap();
        v.verify_server_cert(cert, &[], &name, &[], UnixTime::now())
    }

    #[test]
    fn the_pin_verifier_accepts_the_pinned_leaf_whatever_its_name() {
        let cert = CertificateDer::from_pem_slice(CERT.as_bytes()).unwrap();
        let v = verifier(FINGERPRINT);
        for name in ["nas.clinic.lan", "192.168.1.20", "arka-test"] {
            verify(&v, &cert, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        // The lower-case, colon-free spelling pins the same certificate.
        let plain = FINGERPRINT.replace(':', "").to_lowercase();
        verify(&verifier(&plain), &cert, "nas").unwrap();
    }

    #[test]
    fn the_pin_verifier_refuses_another_certificate_and_names_its_hash() {
        let cert = CertificateDer::from_pem_slice(CERT.as_bytes()).unwrap();
        let other = "00".repeat(32);
        let err = verify(&verifier(&other), &cert, "nas").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("not the pinned one") && text.contains(&FINGERPRINT.replace(':', "").to_lowercase()),
            "{text}"
        );
        // A certificate that differs in one byte is another certificate.
        let mut der = cert.as_ref().to_vec();
        let last = der.len() - 1;
        der[last] ^= 1;
        assert!(verify(&verifier(FINGERPRINT), &CertificateDer::from(der), "nas").is_err());
    }

    #[test]
    fn pins_must_be_64_hex_digits() {
        for bad in ["", "abc", &"g".repeat(64), &"0".repeat(63), &"0".repeat(66), "sha256:00"] {
            assert!(parse_pin(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_pin(&"Ab".repeat(32)).unwrap(), [0xab; 32]);
    }

    #[test]
    fn tokens_are_redacted_and_refuse_what_a_header_cannot_hold() {
        let t = Token::new("s3cr3t-token-value\n").unwrap();
        assert_eq!(format!("{t:?}"), "***");
        let h = t.header();
        assert!(h.is_sensitive());
        assert!(!format!("{h:?}").contains("s3cr3t"), "{h:?}");
        for bad in ["", "\n", "two words", "tab\tbed", "zażółć"] {
            assert!(Token::new(bad).is_err(), "{bad:?}");
        }
        let resolved = Resolved { token: t, trust: Trust::Platform };
        assert!(!format!("{resolved:?}").contains("s3cr3t"));
    }

    #[test]
    fn ca_files_must_hold_a_certificate() {
        assert!(check_ca_pem(CERT.as_bytes()).is_ok());
        assert!(check_ca_pem(b"").is_err());
        assert!(check_ca_pem(b"hello").is_err());
    }
}
