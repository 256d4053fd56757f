//! TLS for `kiln server` (rustls): the certificate and key read from PEM files, and a listener
//! for `axum::serve` that hands over connections once their handshake is done.
//!
//! Handshakes run on tasks of their own, bounded by [`HANDSHAKE_TIMEOUT`], so a client that
//! connects and says nothing holds up no other connection.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;

/// How long a client may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest certificate or key file read.
const MAX_PEM_FILE: u64 = 1024 * 1024;

/// Why the certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{flag} {path}: cannot read: {source}")]
    Read {
        flag: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{flag} {path}: {why}")]
    Parse {
        flag: &'static str,
        path: String,
        why: String,
    },
    #[error("--tls-key {key} does not belong to --tls-cert {cert}: {why}")]
    Mismatch {
        cert: String,
        key: String,
        why: String,
    },
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PEM_FILE).read_to_end(&mut bytes))
        .map_err(|source| TlsError::Read {
            flag,
            path: path.display().to_string(),
            source,
        })?;
    Ok(bytes)
}

/// The server's TLS configuration from a PEM certificate chain (the server's certificate
/// first, then any intermediates) and its PEM private key (PKCS#8, PKCS#1 or SEC1). Refuses
/// files that hold no certificate or key, and a key that is not the certificate's.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let parse = |flag, path: &Path, why: String| TlsError::Parse {
        flag,
        path: path.display().to_string(),
        why,
    };
    let cert_pem = read("--tls-cert", cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            parse(
                "--tls-cert",
                cert,
                format!("not a PEM certificate chain: {e}"),
            )
        })?;
    if chain.is_empty() {
        return Err(parse(
            "--tls-cert",
            cert,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    let key_pem = read("--tls-key", key)?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        parse(
            "--tls-key",
            key,
            format!("holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| parse("--tls-cert", cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| TlsError::Mismatch {
            cert: cert.display().to_string(),
            key: key.display().to_string(),
            why: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A listener for `axum::serve` that serves TLS: accepts TCP connections (with `TCP_NODELAY`),
/// completes each handshake on a task of its own and yields the connections that finished it.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Starts accepting on `listener` (on the current runtime) until this listener is dropped.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(accept_loop(listener, acceptor, tx));
        Ok(TlsListener { local, ready })
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let accepted = tokio::select! {
            () = tx.closed() => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait a little, as axum does.
                tracing::debug!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Small request/response round trips stall on Nagle's algorithm without this.
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    let _ = tx.send((tls, peer)).await;
                }
                // A client that does not trust the certificate, or does not speak TLS.
                Ok(Err(e)) => tracing::debug!("TLS handshake with {peer} failed: {e}"),
                Err(_) => tracing::debug!("TLS handshake with {peer} timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept loop only ends once this listener is gone; never reached.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_certificate_and_its_key_make_a_config_and_mistakes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let a = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert = write(dir.path(), "a.pem", &a.cert.pem());
        let key = write(dir.path(), "a.key", &a.signing_key.serialize_pem());
        let other_key = write(dir.path(), "b.key", &b.signing_key.serialize_pem());
        let config = server_config(&cert, &key).unwrap();
        assert_eq!(config.alpn_protocols[1], b"http/1.1");

        let missing = dir.path().join("missing.pem");
        let e = server_config(&missing, &key).unwrap_err().to_string();
        assert!(
            e.starts_with("--tls-cert ") && e.contains("cannot read"),
            "{e}"
        );
        let e = server_config(&cert, &missing).unwrap_err().to_string();
        assert!(
            e.starts_with("--tls-key ") && e.contains("cannot read"),
            "{e}"
        );
        // Each file given in the other's place.
        let e = server_config(&key, &cert).unwrap_err().to_string();
        assert!(e.contains("no PEM certificate"), "{e}");
        let e = server_config(&cert, &cert).unwrap_err().to_string();
        assert!(e.contains("no PEM private key"), "{e}");
        let e = server_config(&cert, &other_key).unwrap_err().to_string();
        assert!(e.contains("does not belong to --tls-cert"), "{e}");
    }
}
