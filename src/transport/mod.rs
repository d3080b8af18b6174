//! The three communication models as traits — the only abstraction in the project — and
//! their real adapters. The in-memory implementations live in the lab (`campus-sim`).
//!
//! | model            | trait            | real adapter                 | in memory (lab)     |
//! |------------------|------------------|------------------------------|---------------------|
//! | request / reply  | [`RequestReply`] | [`http::HttpRequestReply`]   | `SimNet`            |
//! | messaging        | [`queue::MessageQueue`] | [`amqp::AmqpQueue`]   | `SimQueue`          |
//! | streaming        | [`log::EventLog`] | [`kafka::KafkaLog`]        | `SimLog`            |

pub mod amqp;
pub mod http;
pub mod kafka;
pub mod log;
pub mod queue;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use crate::model::Service;

/// The header of an HTTP request, an AMQP message or a Kafka record that carries its trace
/// context, in W3C form (see `docs/tracing.md`).
pub const TRACEPARENT: &str = "traceparent";

/// A message's or a record's headers (name, value), in order.
pub type Headers = Vec<(String, String)>;

/// The value of the header `name` in `headers`, if there is one.
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// Sets the header `name` in `headers` to `value`, replacing one of that name.
pub fn set_header(headers: &mut Headers, name: &str, value: impl Into<String>) {
    headers.retain(|(n, _)| n != name);
    headers.push((name.to_owned(), value.into()));
}

/// A boxed, sendable future: what the traits return so that they can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a call produced no HTTP response at all. (A response with an error status is a
/// response: the caller reads its status.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Nothing listens there: connection refused, or the host is down in the simulation.
    #[error("{peer} unreachable: {detail}")]
    Unreachable { peer: Service, detail: String },
    /// The connection broke, or the reply could not be read.
    #[error("call to {peer} failed: {detail}")]
    Failed { peer: Service, detail: String },
}

/// A gRPC channel to one service: what tonic's generated clients call through. Its replies
/// stream (a gRPC status travels in the trailers); its own failures — nothing listening, the
/// connection broken — are already statuses, `UNAVAILABLE`, as gRPC clients expect.
pub type GrpcChannel =
    tower::util::BoxCloneSyncService<::http::Request<tonic::body::Body>, ::http::Response<tonic::body::Body>, tonic::Status>;

/// Synchronous request/reply (Part A). One call sends one HTTP request to a peer and waits
/// for its whole reply; or, over [`RequestReply::grpc`], one gRPC call.
///
/// A call has **no deadline of its own**: the caller bounds it with `tokio::time::timeout`, so
/// the same bound holds over real sockets and in the simulation's virtual time.
pub trait RequestReply: Send + Sync + 'static {
    fn call(&self, to: Service, request: ::http::Request<Bytes>) -> BoxFuture<'_, Result<::http::Response<Bytes>, CallError>>;

    /// A gRPC channel to `to`: HTTP/2 to its address over real sockets (connected at the first
    /// call, then kept and multiplexed), the in-memory network in the lab.
    fn grpc(self: Arc<Self>, to: Service) -> GrpcChannel;
}

impl dyn RequestReply {
    /// `POST path` with a JSON body.
    pub async fn post_json<T: Serialize>(&self, to: Service, path: &str, body: &T) -> Result<::http::Response<Bytes>, CallError> {
        let request = ::http::Request::post(path)
            .header(::http::header::CONTENT_TYPE, "application/json")
            .body(Bytes::from(serde_json::to_vec(body).expect("request bodies serialize")))
            .expect("a path and a content type make a valid request");
        self.call(to, request).await
    }
}
