//! The HTTPS listener (docs/configuration.md, "TLS"): the same router as the plain
//! listener, behind rustls.
//!
//! The Kubernetes API server calls admission webhooks over HTTPS only, so
//! the service can serve TLS itself rather than need a proxy in front.
//! Certificates rotate (cert-manager renews them, a Secret volume swaps the
//! files), so the certificate and key are re-read when their contents
//! change; a new pair that does not load (unreadable, not PEM, key not
//! matching the certificate) is reported and the previous pair keeps
//! serving. Each connection takes the pair that is current when it is
//! accepted.
//!
//! Plain HTTP sent to this port gets a short `400` naming the mistake, and
//! the connection is closed: an HTTP request starts with a letter, a TLS
//! connection with a handshake record (byte `0x16`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use super::admission_access::TlsConnection;

pub(crate) use crate::config::TlsFiles;

/// The first byte of a TLS record carrying a handshake message.
const TLS_HANDSHAKE: u8 = 0x16;

/// Why a certificate and key could not be used, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls.certificate {path}: {message}")]
    Certificate { path: String, message: String },
    #[error("tls.key {path}: {message}")]
    Key { path: String, message: String },
    #[error("tls.key {key} does not belong to tls.certificate {certificate}: {message}")]
    Mismatch {
        certificate: String,
        key: String,
        message: String,
    },
}

/// The files' contents as last read: a reload happens when they differ.
#[derive(PartialEq, Eq)]
struct Contents {
    certificate: Vec<u8>,
    key: Vec<u8>,
}

impl TlsFiles {
    fn read(&self) -> Result<Contents, TlsError> {
        let certificate = std::fs::read(&self.certificate).map_err(|e| TlsError::Certificate {
            path: self.certificate.display().to_string(),
            message: e.to_string(),
        })?;
        let key = std::fs::read(&self.key).map_err(|e| TlsError::Key {
            path: self.key.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(Contents { certificate, key })
    }

    /// Reads and checks both files: a server configuration, or what is
    /// wrong with which file.
    pub fn load(&self) -> Result<Arc<ServerConfig>, TlsError> {
        self.build(&self.read()?, None)
    }

    /// `client`: the verifier of client certificates, when the admission
    /// route takes them (`integrations.kubernetes.client_ca`).
    fn build(
        &self,
        c: &Contents,
        client: Option<&ClientVerifier>,
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let cert_err = |message: String| TlsError::Certificate {
            path: self.certificate.display().to_string(),
            message,
        };
        let key_err = |message: String| TlsError::Key {
            path: self.key.display().to_string(),
            message,
        };
        let chain = CertificateDer::pem_slice_iter(&c.certificate)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| cert_err(format!("not a PEM certificate chain: {e}")))?;
        if chain.is_empty() {
            return Err(cert_err(
                "no CERTIFICATE block in the file (expected PEM)".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(&c.key)
            .map_err(|e| key_err(format!("no usable PEM private key: {e}")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| cert_err(format!("TLS setup: {e}")))?;
        let builder = match client {
            Some(verifier) => builder.with_client_cert_verifier(verifier.clone()),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => TlsError::Mismatch {
                certificate: self.certificate.display().to_string(),
                key: self.key.display().to_string(),
                message: e.to_string(),
            },
            other => key_err(other.to_string()),
        })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Verifies the client certificates a connection may present.
pub(crate) type ClientVerifier = Arc<dyn rustls::server::danger::ClientCertVerifier>;

/// The current server configuration, swapped when the files change.
pub(crate) struct Certificates {
    files: TlsFiles,
    client: Option<ClientVerifier>,
    current: ArcSwap<ServerConfig>,
    /// The contents last tried, loaded or refused: a refused pair is
    /// reported once, not at every poll.
    last: std::sync::Mutex<Contents>,
}

impl Certificates {
    /// Loads the pair; fails naming the file when it cannot be used.
    #[cfg(test)]
    pub(crate) fn load(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        Self::load_with(files, None)
    }

    /// [`Certificates::load`], asking clients for a certificate that
    /// `client` verifies (optional for the client).
    pub(crate) fn load_with(
        files: TlsFiles,
        client: Option<ClientVerifier>,
    ) -> Result<Arc<Self>, TlsError> {
        let contents = files.read()?;
        let config = files.build(&contents, client.as_ref())?;
        Ok(Arc::new(Certificates {
            files,
            client,
            current: ArcSwap::new(config),
            last: std::sync::Mutex::new(contents),
        }))
    }

    /// Re-reads the files; swaps in the new pair when they changed and
    /// load. Returns whether the serving pair changed.
    pub(crate) fn reload(&self) -> bool {
        let contents = match self.files.read() {
            Ok(c) => c,
            Err(e) => {
                // Mid-rotation a file may be missing for a moment; the next
                // poll sees the new one.
                tracing::debug!(error = %e, "TLS files not readable; keeping the current certificate");
                return false;
            }
        };
        let Ok(mut last) = self.last.lock() else {
            return false;
        };
        if *last == contents {
            return false;
        }
        let result = self.files.build(&contents, self.client.as_ref());
        *last = contents;
        match result {
            Ok(config) => {
                self.current.store(config);
                tracing::info!(certificate = %self.files.certificate.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "new TLS certificate refused; still serving the previous one");
                false
            }
        }
    }

    /// Polls the files every `interval` for as long as the service runs.
    pub(crate) fn watch(self: &Arc<Self>, interval: Duration) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let certs = this.clone();
                // File reads are blocking; keep them off the request threads.
                let _ = tokio::task::spawn_blocking(move || certs.reload()).await;
            }
        });
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.load_full())
    }

    /// The files served.
    pub(crate) fn files(&self) -> &TlsFiles {
        &self.files
    }
}

/// Serves `router` over TLS on `listener` until `shutdown` completes, then
/// stops accepting and waits for the connections' in-flight requests.
/// `handshake_timeout` bounds how long a connection may take to start.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    certificates: Arc<Certificates>,
    handshake_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    super::listener::accept_until(listener, shutdown, "TLS listener", |tcp, peer, watcher| {
        let acceptor = certificates.acceptor();
        let router = router.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(handshake_timeout, start(tcp, acceptor)).await {
                Ok(Some(tls)) => tls,
                Ok(None) => return,
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            // Handlers see that the request came over TLS, and with which
            // verified client certificate (the admission route's access).
            let connection = TlsConnection {
                client_certificate: tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|leaf| super::admission_access::fingerprint(leaf)),
            };
            // And, for the capacity gate, the peer's address and that it
            // came over TLS.
            let service = TowerToHyperService::new(
                super::capacity::tag(router, peer.ip(), true).map_request(
                    move |mut req: axum::http::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(connection.clone());
                        req
                    },
                ),
            );
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(handshake_timeout);
            let conn = http.serve_connection(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "TLS connection ended with an error");
            }
        });
    })
    .await;
}

/// The TLS handshake, or `None` (logged) when the peer does not speak TLS
/// or the handshake fails. Plain HTTP gets a `400` saying to use https.
async fn start(
    mut tcp: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let peer = tcp.peer_addr().ok();
    let mut first = [0u8; 1];
    match tcp.peek(&mut first).await {
        Ok(0) | Err(_) => return None,
        Ok(_) => {}
    }
    if first[0] != TLS_HANDSHAKE {
        tracing::debug!(?peer, "plain HTTP (or other non-TLS bytes) on the TLS port");
        let _ = tcp.write_all(PLAIN_HTTP_ANSWER).await;
        let _ = tcp.shutdown().await;
        return None;
    }
    match acceptor.accept(tcp).await {
        Ok(tls) => Some(tls),
        Err(e) => {
            tracing::debug!(?peer, error = %e, "TLS handshake failed");
            None
        }
    }
}

const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
content-type: application/json\r\n\
connection: close\r\n\
content-length: 110\r\n\
\r\n\
{\"error\":{\"code\":\"tls_required\",\"message\":\"this port serves HTTPS; send the request with https://\",\"path\":\"\"}}";

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &std::path::Path, name: &str) -> TlsFiles {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let files = TlsFiles {
            certificate: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.certificate, made.cert.pem()).unwrap();
        std::fs::write(&files.key, made.key_pair.serialize_pem()).unwrap();
        files
    }

    #[test]
    fn a_missing_or_unreadable_certificate_or_key_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let good = pair(dir.path(), "a");
        let missing = TlsFiles {
            certificate: dir.path().join("nope.crt"),
            key: good.key.clone(),
        };
        let e = missing.load().err().unwrap().to_string();
        assert!(
            e.starts_with("tls.certificate ") && e.contains("nope.crt"),
            "{e}"
        );
        std::fs::write(dir.path().join("junk.key"), "not a key").unwrap();
        let junk = TlsFiles {
            certificate: good.certificate.clone(),
            key: dir.path().join("junk.key"),
        };
        let e = junk.load().err().unwrap().to_string();
        assert!(e.starts_with("tls.key ") && e.contains("junk.key"), "{e}");
        std::fs::write(dir.path().join("junk.crt"), "not a certificate").unwrap();
        let e = TlsFiles {
            certificate: dir.path().join("junk.crt"),
            key: good.key.clone(),
        }
        .load()
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("junk.crt") && e.contains("no CERTIFICATE"),
            "{e}"
        );
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_naming_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = pair(dir.path(), "a");
        let b = pair(dir.path(), "b");
        let e = TlsFiles {
            certificate: a.certificate.clone(),
            key: b.key.clone(),
        }
        .load()
        .err()
        .unwrap();
        assert!(matches!(e, TlsError::Mismatch { .. }), "{e}");
        let text = e.to_string();
        assert!(text.contains("a.crt") && text.contains("b.key"), "{text}");
    }

    #[test]
    fn a_reload_swaps_in_a_new_pair_and_keeps_the_old_one_when_the_new_one_is_bad() {
        let dir = tempfile::tempdir().unwrap();
        let files = pair(dir.path(), "live");
        let certs = Certificates::load(files.clone()).unwrap();
        let first = certs.current.load_full();
        assert!(!certs.reload(), "unchanged files are not reloaded");
        // A certificate whose key has not been replaced yet: refused.
        let other = pair(dir.path(), "next");
        std::fs::copy(&other.certificate, &files.certificate).unwrap();
        assert!(!certs.reload());
        assert!(Arc::ptr_eq(&first, &certs.current.load_full()));
        // Its key arrives: the pair loads.
        std::fs::copy(&other.key, &files.key).unwrap();
        assert!(certs.reload());
        assert!(!Arc::ptr_eq(&first, &certs.current.load_full()));
    }

    #[test]
    fn listen_tls_needs_both_files_and_the_files_need_listen_tls() {
        use crate::config::Config;
        let e = Config::parse("listen_tls = \"127.0.0.1:8443\"\n[tls]\ncertificate = \"c.pem\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("tls.key"), "{e}");
        let e = Config::parse("[tls]\ncertificate = \"c.pem\"\nkey = \"k.pem\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("listen_tls"), "{e}");
        Config::parse(
            "listen_tls = \"127.0.0.1:8443\"\n[tls]\ncertificate = \"c.pem\"\nkey = \"k.pem\"\n",
        )
        .unwrap();
    }

    #[test]
    fn the_plain_http_answer_declares_its_exact_length() {
        let text = std::str::from_utf8(PLAIN_HTTP_ANSWER).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let declared: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(declared, body.len());
        serde_json::from_str::<serde_json::Value>(body).unwrap();
    }
}
