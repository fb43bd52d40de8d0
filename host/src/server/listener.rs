//! The plain HTTP listener: hyper's HTTP/1.1 connections with a deadline
//! on the request line and headers, each request tagged with its client
//! address ([`super::capacity::Peer`]).
//!
//! `axum::serve` sets no timer on its connections, so hyper's header read
//! deadline never fires there and a client that sends its headers one
//! byte a minute keeps its connection for good (slowloris). This loop is
//! the TLS listener's (`tls::serve`) without the handshake.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};

/// Serves `router` on `listener` until `shutdown` completes, then drains
/// the connections in flight.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    accept_until(listener, shutdown, "listener", |tcp, peer, watcher| {
        let _ = tcp.set_nodelay(true);
        let service =
            TowerToHyperService::new(super::capacity::tag(router.clone(), peer.ip(), false));
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let conn = http.serve_connection(TokioIo::new(tcp), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    })
    .await;
}

/// The accept loop both listeners share: each connection goes to `handle`
/// with a watcher of the graceful shutdown; when `shutdown` completes the
/// listener closes and the connections' in-flight requests are awaited.
/// An accept error (out of file descriptors and the like) pauses the loop
/// rather than spinning it.
pub(super) async fn accept_until(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    name: &'static str,
    mut handle: impl FnMut(TcpStream, SocketAddr, Watcher),
) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "{name}: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        handle(tcp, peer, graceful.watcher());
    }
    drop(listener);
    graceful.shutdown().await;
}
