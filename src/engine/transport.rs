//! How bytes reach the engine: a unix socket, plain TCP, TLS over TCP, or an
//! `ssh` child running `docker system dial-stdio` on the far side, as the
//! docker CLI does (docker/cli v28.2.2 `cli/connhelper/connhelper.go`). One
//! connector serves the bollard client (as its custom transport) and the raw
//! GET of `/system/df`, so both reach the same engine the same way.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::host::Host;
use crate::exit::UsageError;
use crate::files;

/// The URI authority requests carry: the connector, not the URI, says where
/// the engine is (as the docker CLI's `http://docker.example.com` for ssh).
pub(crate) const AUTHORITY: &str = "http://docker.engine";

/// TLS as the docker CLI sets it up (`--tls`, `--tlsverify`, `DOCKER_CERT_PATH`,
/// a context's TLS material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tls {
    /// Verify the engine's certificate (`--tlsverify`): against `ca` when
    /// given, else the system's roots. Without it (`--tls`, a context's
    /// `SkipTLSVerify`) the connection is still encrypted, but anyone can
    /// answer: as with docker.
    pub(crate) verify: bool,
    pub(crate) ca: Option<PathBuf>,
    /// A client certificate and its key, presented when both are given.
    pub(crate) cert: Option<PathBuf>,
    pub(crate) key: Option<PathBuf>,
}

impl Tls {
    /// The rustls configuration, or a one-line error naming the file at fault.
    pub(crate) fn client_config(&self) -> Result<rustls::ClientConfig, UsageError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|err| UsageError(format!("TLS: {err}")))?;
        let builder = if self.verify {
            let mut roots = rustls::RootCertStore::empty();
            if let Some(ca) = &self.ca {
                for cert in read_certs(ca, "TLS CA certificate")? {
                    roots.add(cert).map_err(|err| {
                        UsageError(format!("TLS CA certificate {}: {err}", ca.display()))
                    })?;
                }
            } else {
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
            }
            builder.with_root_certificates(roots)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
        };
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let chain = read_certs(cert, "TLS client certificate")?;
                let body = files::read_limited_to(key, "TLS key", files::MAX_TLS_FILE)?;
                let key = PrivateKeyDer::from_pem_slice(&body).map_err(|err| {
                    UsageError(format!("cannot read TLS key {}: {err}", key.display()))
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|err| UsageError(format!("TLS client certificate: {err}")))
            }
            // docker refuses half a key pair too (docker/go-connections
            // tlsconfig `getCert`); dropping the half silently would connect
            // without the identity the user meant to present.
            (Some(cert), None) => Err(UsageError(format!(
                "TLS client certificate {} has no key: give --tlskey (or key.pem beside it) too",
                cert.display()
            ))),
            (None, Some(key)) => Err(UsageError(format!(
                "TLS key {} has no certificate: give --tlscert (or cert.pem beside it) too",
                key.display()
            ))),
            (None, None) => Ok(builder.with_no_client_auth()),
        }
    }
}

/// Certificates from a PEM file: a regular file of at most
/// [`files::MAX_TLS_FILE`] bytes, opened without blocking (a FIFO or
/// `/dev/zero` is refused at once, not read for ever).
fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, UsageError> {
    let body = files::read_limited_to(path, what, files::MAX_TLS_FILE)?;
    let certs = CertificateDer::pem_slice_iter(&body)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| UsageError(format!("cannot read {what} {}: {err}", path.display())))?;
    if certs.is_empty() {
        return Err(UsageError(format!(
            "{what} {} holds no certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// `--tls` without `--tlsverify`: encrypted, the engine's certificate taken as it
/// comes (signatures still checked, so the session is with its holder).
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Where and how to dial, made once per run.
enum Dial {
    Unix(PathBuf),
    Tcp(String),
    Tls {
        authority: String,
        connector: tokio_rustls::TlsConnector,
        name: ServerName<'static>,
    },
    Ssh(Vec<String>),
}

/// The connector both HTTP clients use.
#[derive(Clone)]
pub(crate) struct Connector {
    dial: Arc<Dial>,
    /// What `ssh` said on stderr, each line once: the reason a connection
    /// failed is there (a refused port, an unknown host key, a denied key),
    /// not in the closed stream.
    ssh_said: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Connector {
    pub(crate) fn new(host: &Host, tls: Option<&Tls>) -> Result<Connector, UsageError> {
        let dial = match (host, tls) {
            (Host::Unix(path), _) => Dial::Unix(path.clone()),
            (Host::Tcp(authority), None) => Dial::Tcp(authority.clone()),
            (Host::Tcp(authority), Some(tls)) => {
                let config = tls.client_config()?;
                let server = authority
                    .rsplit_once(':')
                    .map_or(authority.as_str(), |(name, _)| name);
                let server = server.trim_start_matches('[').trim_end_matches(']');
                let name = ServerName::try_from(server.to_string()).map_err(|err| {
                    UsageError(format!("invalid host {authority:?} for TLS: {err}"))
                })?;
                Dial::Tls {
                    authority: authority.clone(),
                    connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
                    name,
                }
            }
            (Host::Ssh(target), _) => Dial::Ssh(target.command()),
        };
        Ok(Connector {
            dial: Arc::new(dial),
            ssh_said: Arc::default(),
        })
    }

    /// The last thing `ssh` said on stderr, if it said anything.
    pub(crate) fn ssh_said(&self) -> Option<String> {
        self.ssh_said
            .lock()
            .ok()
            .and_then(|lines| lines.last().cloned())
    }
}

impl tower_service::Service<hyper::Uri> for Connector {
    type Response = Io;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Io>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: hyper::Uri) -> Self::Future {
        let dial = Arc::clone(&self.dial);
        let ssh_said = Arc::clone(&self.ssh_said);
        Box::pin(async move {
            let stream = match &*dial {
                Dial::Unix(path) => Stream::Unix(tokio::net::UnixStream::connect(path).await?),
                Dial::Tcp(authority) => {
                    Stream::Tcp(tokio::net::TcpStream::connect(authority).await?)
                }
                Dial::Tls {
                    authority,
                    connector,
                    name,
                } => {
                    let tcp = tokio::net::TcpStream::connect(authority).await?;
                    let tls = connector.connect(name.clone(), tcp).await?;
                    Stream::Tls(Box::new(tls))
                }
                Dial::Ssh(command) => Stream::Ssh(Box::new(SshStream::spawn(command, ssh_said)?)),
            };
            Ok(Io(TokioIo::new(stream)))
        })
    }
}

/// The byte stream of one connection.
enum Stream {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
    Ssh(Box<SshStream>),
}

/// `ssh … docker system dial-stdio`: the API over the child's stdin and
/// stdout. The child is killed when the connection is dropped.
struct SshStream {
    _child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::process::ChildStdout,
}

impl SshStream {
    /// Starts `command`; its stderr lines go to `said`, each once (prompts go
    /// to the terminal, as ssh writes them there, not to stderr).
    fn spawn(
        command: &[String],
        said: Arc<std::sync::Mutex<Vec<String>>>,
    ) -> io::Result<SshStream> {
        let (program, args) = command
            .split_first()
            .ok_or_else(|| io::Error::other("no ssh command"))?;
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| io::Error::new(err.kind(), format!("running {program}: {err}")))?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("ssh without stdin"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("ssh without stdout"))?;
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(async move {
                use tokio::io::AsyncBufReadExt;
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let line = line.trim().to_string();
                    if let Ok(mut said) = said.lock()
                        && !line.is_empty()
                        && !said.contains(&line)
                    {
                        said.push(line);
                    }
                }
            });
        }
        Ok(SshStream {
            _child: child,
            stdin,
            stdout,
        })
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Ssh(s) => Pin::new(&mut s.stdout).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Ssh(s) => Pin::new(&mut s.stdin).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Ssh(s) => Pin::new(&mut s.stdin).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Ssh(s) => Pin::new(&mut s.stdin).poll_shutdown(cx),
        }
    }
}

/// A connection as hyper sees it.
pub(crate) struct Io(TokioIo<Stream>);

impl Connection for Io {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl Read for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl Write for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(ca: Option<&str>, cert: Option<&str>, key: Option<&str>) -> Tls {
        Tls {
            verify: true,
            ca: ca.map(PathBuf::from),
            cert: cert.map(PathBuf::from),
            key: key.map(PathBuf::from),
        }
    }

    /// Safety round 2, finding 2: `--tlscacert /dev/zero` grew without bound,
    /// a FIFO hung.
    #[test]
    fn endless_or_blocking_tls_files_are_refused_at_once() {
        let err = tls(Some("/dev/zero"), None, None)
            .client_config()
            .unwrap_err();
        assert!(err.0.contains("character device"), "{}", err.0);
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("ca.pem");
        crate::files::make_fifo(&fifo);
        let err = tls(fifo.to_str(), None, None).client_config().unwrap_err();
        assert!(err.0.contains("a FIFO"), "{}", err.0);
    }

    /// Finding 11: `--tlscert` without `--tlskey` dropped the certificate.
    #[test]
    fn half_a_key_pair_is_an_error() {
        let err = tls(None, Some("/nonexistent/cert.pem"), None)
            .client_config()
            .unwrap_err();
        assert!(err.0.contains("has no key"), "{}", err.0);
        let err = tls(None, None, Some("/nonexistent/key.pem"))
            .client_config()
            .unwrap_err();
        assert!(err.0.contains("has no certificate"), "{}", err.0);
    }
}
