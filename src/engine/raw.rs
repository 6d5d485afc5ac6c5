//! A plain HTTP GET to the engine for the one endpoint whose response bollard
//! 0.21 cannot parse on older engines (`/system/df`). Same connector (socket,
//! TCP, TLS or ssh), same pinned API version as the bollard client.

use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Response;
use hyper::body::Incoming;
use hyper_util::client::legacy::{Client, Error as LegacyError};
use hyper_util::rt::TokioExecutor;

use super::api::{Refused, timed_out};
use super::host::Host;
use super::transport::{AUTHORITY, Connector};

#[derive(Clone)]
pub(crate) struct RawClient {
    client: Client<Connector, Empty<Bytes>>,
    host: Host,
    timeout: Duration,
}

impl RawClient {
    pub(crate) fn new(connector: Connector, host: &Host, timeout: Duration) -> RawClient {
        RawClient {
            client: Client::builder(TokioExecutor::new()).build(connector),
            host: host.clone(),
            timeout,
        }
    }

    async fn send(
        &self,
        path_and_query: &str,
        request: impl Future<Output = Result<Response<Incoming>, LegacyError>>,
    ) -> Result<Response<Incoming>> {
        match tokio::time::timeout(self.timeout, request).await {
            Ok(answer) => answer.with_context(|| format!("GET {path_and_query}")),
            Err(_) => Err(timed_out(&self.host, self.timeout)),
        }
    }

    /// GETs `path_and_query` (already carrying the `/v1.xx` prefix) and returns the
    /// body of a 2xx answer; any other status is an error with the engine's message.
    pub(crate) async fn get(&self, path_and_query: &str) -> Result<Bytes> {
        let uri: hyper::Uri = format!("{AUTHORITY}{path_and_query}")
            .parse()
            .with_context(|| format!("building a request URI for {path_and_query}"))?;
        let response = self.send(path_and_query, self.client.get(uri)).await?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("reading the answer to GET {path_and_query}"))?
            .to_bytes();
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|value| value.get("message")?.as_str().map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            return Err(Refused {
                request: format!("GET {path_and_query}"),
                status: status.as_u16(),
                message,
            }
            .into());
        }
        Ok(body)
    }
}
