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

use bytes::Bytes;
use serde::Serialize;

use crate::model::Service;

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

/// Synchronous request/reply (Part A). One call sends one HTTP request to a peer and waits
/// for its whole reply.
///
/// A call has **no deadline of its own**: the caller bounds it with `tokio::time::timeout`, so
/// the same bound holds over real sockets and in the simulation's virtual time.
pub trait RequestReply: Send + Sync + 'static {
    fn call(&self, to: Service, request: ::http::Request<Bytes>) -> BoxFuture<'_, Result<::http::Response<Bytes>, CallError>>;
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
