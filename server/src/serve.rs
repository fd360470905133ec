//! The accept loop: plain HTTP on loopback or TLS (rustls), HTTP/1.1, with the peer's
//! address on every request, per-address and global connection caps, and an idle timeout
//! against clients that connect and send nothing or trickle their headers.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;
use crate::metrics::Metrics;
use crate::state::{AppState, Remote};
use crate::write_stall::{is_write_stall, WriteStall};

pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(55);

pub fn tls_acceptor(tls: &TlsConfig) -> Result<TlsAcceptor, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("tls.cert {}: {e}", tls.cert.display()))?;
    if certs.is_empty() {
        return Err(format!("tls.cert {}: no certificate in the file", tls.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| format!("tls.key {}: {e}", tls.key.display()))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls: the certificate and key do not go together: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves until `shutdown` resolves, then stops accepting and lets the requests in flight
/// finish for up to [`DRAIN_TIMEOUT`] (idle keep-alive connections are closed at once).
/// Anything still running after that is dropped, which is safe: every write is atomic.
///
/// At most `max_connections` are served at once (more wait in the kernel's backlog, as
/// the next slot is taken before accepting), and at most `max_connections_per_address`
/// from one address: one over that is closed as soon as it is accepted, so an address
/// that hogs connections does not keep others waiting.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let limits = state.config.limits.clone();
    let router = crate::api::router(state.clone());
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = PerAddress::new(limits.max_connections_per_address);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = slots.clone().acquire_owned() => p.expect("never closed"),
        };
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(held) = per_address.try_hold(peer.ip()) else {
            // Dropping the socket closes it; the permit goes back with it.
            Metrics::add(&state.metrics.connections_refused, 1);
            tracing::debug!(remote = %peer.ip(), "closed a connection: the address holds max_connections_per_address");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone().layer(axum::Extension(Remote(peer))));
        let connection = Connection { tls: tls.clone(), idle: limits.idle_timeout, state: state.clone(), peer };
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slots = (permit, held);
            connection.run(tcp, service, watcher).await;
        });
    }
    // Closing the socket refuses new connections while the old ones drain.
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still running after {DRAIN_TIMEOUT:?} were cut off");
    }
}

/// One accepted connection, served until it closes.
struct Connection {
    tls: Option<TlsAcceptor>,
    idle: Duration,
    state: Arc<AppState>,
    peer: SocketAddr,
}

impl Connection {
    /// The idle timeout bounds the TLS handshake (a client that connects and sends nothing)
    /// and, as hyper's header timeout, each request's headers, which hyper times from the
    /// moment it starts waiting for them: after the handshake and after every answer. So a
    /// connection that sends nothing is closed after `idle_timeout` wherever it stops.
    /// Under TLS too, a write blocked for `body_stall` (a client that stopped reading its
    /// answer) ends the connection.
    async fn run(self, tcp: TcpStream, service: TowerToHyperService<axum::Router>, watcher: Watcher) {
        let tcp = WriteStall::new(tcp, self.state.config.limits.body_stall);
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new()).header_read_timeout(self.idle);
        let result = match self.tls {
            None => watcher.watch(http.serve_connection(TokioIo::new(tcp), service)).await,
            Some(acceptor) => match tokio::time::timeout(self.idle, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => watcher.watch(http.serve_connection(TokioIo::new(stream), service)).await,
                Ok(Err(e)) => {
                    tracing::debug!(remote = %self.peer.ip(), "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    self.state.metrics.slow_client_cut("idle");
                    tracing::debug!(remote = %self.peer.ip(), "closed a connection: no TLS handshake within idle_timeout_secs");
                    return;
                }
            },
        };
        match result {
            Err(e) if e.is_timeout() => {
                self.state.metrics.slow_client_cut("idle");
                tracing::debug!(remote = %self.peer.ip(), "closed an idle connection: {e}");
            }
            Err(e) if is_write_stall(&e) => {
                self.state.metrics.slow_client_cut("answer_unread");
                tracing::debug!(remote = %self.peer.ip(), "closed a connection: {e}");
            }
            Err(e) => tracing::debug!(remote = %self.peer.ip(), "connection ended: {e}"),
            Ok(()) => {}
        }
    }
}

/// Connections held per address. IPv6 clients are counted by their /64, which one host
/// usually has whole; IPv4-mapped addresses count as their IPv4 address.
struct PerAddress {
    max: usize,
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection counted against its address until dropped.
struct Held {
    key: IpAddr,
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerAddress {
    fn new(max: usize) -> Self {
        Self { max, held: Default::default() }
    }

    fn try_hold(&self, ip: IpAddr) -> Option<Held> {
        let key = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
            },
            v4 => v4,
        };
        let mut held = self.held.lock().unwrap();
        let n = held.entry(key).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Held { key, held: self.held.clone() })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap();
        if let Some(n) = held.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_over_its_cap_is_refused_and_its_slots_come_back() {
        let cap = PerAddress::new(2);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let (a1, _a2) = (cap.try_hold(a).unwrap(), cap.try_hold(a).unwrap());
        assert!(cap.try_hold(a).is_none());
        assert!(cap.try_hold("127.0.0.1".parse().unwrap()).is_some(), "another address is not held back");
        assert!(cap.try_hold("::ffff:127.0.0.2".parse().unwrap()).is_none(), "the same address mapped to IPv6");
        drop(a1);
        assert!(cap.try_hold(a).is_some());
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let cap = PerAddress::new(1);
        let _held = cap.try_hold("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert!(cap.try_hold("2001:db8:1:2:ffff::9".parse().unwrap()).is_none());
        let other = cap.try_hold("2001:db8:1:3::1".parse().unwrap());
        assert!(other.is_some());
        assert_eq!(cap.held.lock().unwrap().len(), 2);
        drop(other);
        assert_eq!(cap.held.lock().unwrap().len(), 1, "an address with no connection is forgotten");
    }
}
