//! The little HTTP both stand-ins need: a server on 127.0.0.1:0 and a JSON client.

use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::watch;

use super::DemoError;
use crate::proxy::reply::Body;

/// A stand-in serving on 127.0.0.1 until dropped.
pub(crate) struct Server {
    pub(crate) url: String,
    _stop: watch::Sender<()>,
}

impl Server {
    /// Serves `handler` on a free loopback port.
    pub(crate) fn start<H, F>(handler: H) -> Result<Server, DemoError>
    where
        H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Response<Body>> + Send + 'static,
    {
        let (listener, addr) = crate::server::bind(SocketAddr::from(([127, 0, 0, 1], 0)), "demo")
            .map_err(|e| DemoError(e.to_string()))?;
        let listener =
            tokio::net::TcpListener::from_std(listener).map_err(|e| DemoError(e.to_string()))?;
        let (stop, mut stopped) = watch::channel(());
        tokio::spawn(crate::server::serve(listener, None, handler, async move {
            while stopped.changed().await.is_ok() {}
        }));
        Ok(Server {
            url: format!("http://{addr}"),
            _stop: stop,
        })
    }
}

/// A plain-HTTP client (everything in the demo is on loopback).
pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub(crate) fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends a JSON request and reads the whole answer.
pub(crate) async fn send(
    client: &HttpClient,
    method: &str,
    url: &str,
    bearer: &str,
    body: Vec<u8>,
) -> Result<(u16, Bytes), DemoError> {
    let req = Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {bearer}"))
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| DemoError(format!("{method} {url}: {e}")))?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| DemoError(format!("{method} {url}: {e}")))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| DemoError(format!("{method} {url}: reading the answer: {e}")))?
        .to_bytes();
    Ok((status, body))
}

/// Reads a request's body (the stand-ins only take small JSON bodies).
pub(crate) async fn body(req: Request<Incoming>) -> Bytes {
    req.into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default()
}

/// A response with a JSON body (or none), and extra headers.
pub(crate) fn respond(
    status: u16,
    headers: &[(&str, String)],
    json: Option<serde_json::Value>,
) -> Response<Body> {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    let body = match json {
        Some(v) => {
            builder = builder.header("content-type", "application/json");
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    builder
        .body(Full::new(body))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}
