//! One service's Prometheus metrics: a registry of the metrics counted as things happen, and
//! the sources read when scraped. `GET /metrics` answers both in the text exposition format
//! (OpenMetrics 1.0, which Prometheus reads, `Content-Type: application/openmetrics-text`).
//!
//! Every service gets one from its host, so the door (`serve::build`) exposes it and times
//! every request the same way, whichever part,
//! in a process or in the lab's simulated world (where the clock, and so every duration, is
//! virtual).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::transport::BoxFuture;

/// A metric's labels: name → value.
pub type Labels = Vec<(&'static str, String)>;

/// A family of counters, one per label set.
pub type Counters = Family<Labels, Counter>;

type Durations = Family<Labels, Histogram, fn() -> Histogram>;

/// Whether a scraped value only grows or goes up and down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One value read when scraped. A counter's `name` is without its `_total` (the exposition
/// adds it).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub labels: Labels,
    pub value: f64,
}

impl Sample {
    pub fn counter(name: &'static str, help: &'static str, value: u64) -> Self {
        Sample { name, help, kind: Kind::Counter, labels: Vec::new(), value: value as f64 }
    }

    pub fn gauge(name: &'static str, help: &'static str, value: f64) -> Self {
        Sample { name, help, kind: Kind::Gauge, labels: Vec::new(), value }
    }

    pub fn with(mut self, label: &'static str, value: impl Into<String>) -> Self {
        self.labels.push((label, value.into()));
        self
    }
}

/// What a service reads when scraped: its samples now.
pub type Source = Arc<dyn Fn() -> BoxFuture<'static, Vec<Sample>> + Send + Sync>;

/// `campus_reconnects_total{loop}`: the times a loop took up its broker again after losing it.
/// A loop's first time (a consumer's first subscription, its first join) is not a reconnect.
pub struct Reconnects {
    taken_up: Counters,
    again: Counters,
}

impl Reconnects {
    pub fn new(metrics: &ServiceMetrics) -> Self {
        let again = metrics.counters(
            "campus_reconnects",
            "Times a loop took up its broker again after losing it (a consumer subscribing or joining its group again), per loop",
        );
        Reconnects { taken_up: Counters::default(), again }
    }

    /// The loop called `name` took up its broker (again, unless this is its first time).
    pub fn took_up(&self, name: String) {
        let labels = vec![("loop", name)];
        if self.taken_up.get_or_create(&labels).inc() > 0 {
            self.again.get_or_create(&labels).inc();
        }
    }
}

/// A service's metrics (a handle: clones share them).
#[derive(Clone)]
pub struct ServiceMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Mutex<Registry>,
    sources: Mutex<Vec<Source>>,
    requests: Durations,
}

/// The buckets of request durations: 0.5 ms doubling to 16 s (a 60 s outage lands in `+Inf`,
/// and the sum and count still say it).
fn request_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for ServiceMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ServiceMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests: Durations = Family::new_with_constructor(request_buckets);
        registry.register(
            "http_server_request_duration_seconds",
            "Time from a request's arrival to its answer, per method, matched route and status",
            requests.clone(),
        );
        ServiceMetrics { inner: Arc::new(Inner { registry: Mutex::new(registry), sources: Mutex::new(Vec::new()), requests }) }
    }

    /// A family of counters called `name` (without `_total`), counted as things happen.
    pub fn counters(&self, name: &str, help: &str) -> Counters {
        let family = Counters::default();
        self.inner.registry.lock().expect("metrics lock").register(name, help, family.clone());
        family
    }

    /// Reads `source` at every scrape.
    pub fn source(&self, source: impl Fn() -> BoxFuture<'static, Vec<Sample>> + Send + Sync + 'static) {
        self.inner.sources.lock().expect("metrics lock").push(Arc::new(source));
    }

    /// Counts one request of `method` to `route` answered `status` after `took`.
    pub fn observe_request(&self, method: &str, route: String, status: u16, took: Duration) {
        let labels = vec![("method", method.to_owned()), ("route", route), ("status", status.to_string())];
        self.inner.requests.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// The exposition: what was counted, then what the sources read now.
    pub async fn render(&self) -> String {
        let sources: Vec<Source> = self.inner.sources.lock().expect("metrics lock").clone();
        let mut samples = Vec::new();
        for source in sources {
            samples.extend(source().await);
        }
        let mut scraped = Registry::default();
        scraped.register_collector(Box::new(Scraped(samples)));
        let mut text = String::new();
        let encoded = {
            let registry = self.inner.registry.lock().expect("metrics lock");
            prometheus_client::encoding::text::encode_registry(&mut text, &registry)
        };
        encoded
            .and_then(|()| prometheus_client::encoding::text::encode_registry(&mut text, &scraped))
            .and_then(|()| prometheus_client::encoding::text::encode_eof(&mut text))
            .expect("writing to a String cannot fail");
        text
    }

    /// `router` with `GET /metrics`, and every request it answers timed.
    pub fn expose(&self, router: Router) -> Router {
        let metrics = self.clone();
        router
            .route("/metrics", axum::routing::get(move || async move { exposition(metrics.render().await) }))
            .layer(axum::middleware::from_fn_with_state(self.clone(), time_request))
    }
}

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn exposition(text: String) -> Response {
    ([(http::header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}

/// The middleware that times each request under its matched route (`unmatched` for a path no
/// route has, so that a scan of random paths cannot grow the label set).
async fn time_request(State(metrics): State<ServiceMetrics>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let method = request.method().clone();
    let started = tokio::time::Instant::now();
    let response = next.run(request).await;
    metrics.observe_request(method.as_str(), route, response.status().as_u16(), started.elapsed());
    response
}

/// The samples of one scrape, as a collector: samples of one name make one metric family.
#[derive(Debug)]
struct Scraped(Vec<Sample>);

impl Collector for Scraped {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut names: Vec<&'static str> = Vec::new();
        for sample in &self.0 {
            if !names.contains(&sample.name) {
                names.push(sample.name);
            }
        }
        for name in names {
            let family: Vec<&Sample> = self.0.iter().filter(|s| s.name == name).collect();
            let first = family[0];
            let kind = match first.kind {
                Kind::Counter => ConstCounter::new(0u64).metric_type(),
                Kind::Gauge => ConstGauge::new(0.0).metric_type(),
            };
            // Punctuated as the registry punctuates what it holds.
            let help = format!("{}.", first.help);
            let mut metric = encoder.encode_descriptor(name, &help, None, kind)?;
            for sample in family {
                let labelled = metric.encode_family(&sample.labels)?;
                match sample.kind {
                    // Counts are whole numbers, and read as such.
                    Kind::Counter => ConstCounter::new(sample.value as u64).encode(labelled)?,
                    // A whole number (records, units, orders) reads as one.
                    Kind::Gauge if sample.value.fract() == 0.0 && sample.value.abs() < 9e15 => {
                        ConstGauge::new(sample.value as i64).encode(labelled)?
                    }
                    Kind::Gauge => ConstGauge::new(sample.value).encode(labelled)?,
                }
            }
        }
        Ok(())
    }
}
