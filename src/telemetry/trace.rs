//! Traces: where one order spends its time, hop by hop. Every service makes spans with
//! OpenTelemetry's API and SDK and hands the trace context on in W3C `traceparent` form — in an
//! HTTP header (Part A's calls, and the `POST /order` that starts B and C), an AMQP message
//! header (Part B), a Kafka record header (Part C, written in Inventory's transaction).
//!
//! A synchronous hop is a parent and its child: Order's `POST /reserve` client span, Inventory's
//! server span under it. A queue or log hop is a **link**, as OpenTelemetry's messaging
//! conventions have it: the publisher's `publish` span (a child of whatever published it) is
//! named by the message's `traceparent`, and the consumer's `process` span links to it. The
//! `process` span is also the `publish` span's child (the conventions allow both), so that one
//! order is one trace in a viewer; a redelivery or a replay is one more `process` span under,
//! and linked to, the same `publish` span. The time between the two (`publish` ends, `process`
//! starts) is the time the message waited in the queue or the log.
//!
//! Spans are stamped with the host's clock (`Host::clock`): the wall clock in a process, the
//! virtual one in the simulation, where span and trace ids come from the seed too, so a seed
//! gives the same spans every run. (`tracing-opentelemetry` would stamp them with the wall
//! clock whatever the host, which is why spans are made here with OpenTelemetry's API; the
//! services' log lines stay `tracing`'s.)
//!
//! Finished spans go to a [`SpanSink`]: in a process, written as they end to its trace file, a
//! line of OTLP JSON each (an `ExportTraceServiceRequest`, what an OpenTelemetry collector's
//! file exporter writes), and posted every second to `$OTEL_EXPORTER_OTLP_ENDPOINT/v1/traces`
//! (OTLP over HTTP, JSON) when that is set, so that Jaeger or any collector shows them; in the
//! simulation, collected for the lab to take.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{Link, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceId, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SdkTracer, SdkTracerProvider, SpanData, SpanExporter};
use opentelemetry_sdk::Resource;

use crate::model::Service;
pub use crate::transport::TRACEPARENT;

pub use opentelemetry::context::FutureExt as WithContext;
pub use opentelemetry::trace::SpanKind as Kind;
/// OTLP's types: what a trace file holds, a line each ([`Request`]).
pub use opentelemetry_proto::tonic as otlp;
/// One line of a trace file: spans grouped by service.
pub use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest as Request;

/// The environment variable naming an OTLP collector (`http://127.0.0.1:4318`): finished spans
/// are posted to its `/v1/traces` as well as written to the trace file.
pub const OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Where the finished spans of one run or one process go: collected (the simulation, where the
/// lab takes them; a process posting them to a collector), and written as they end, a line of
/// OTLP JSON each, to a file (a process: a SIGKILL loses only spans not yet ended). It is also
/// where span ids come from in the simulation.
#[derive(Clone, Default)]
pub struct SpanSink(Arc<SinkInner>);

#[derive(Default)]
struct SinkInner {
    collect: bool,
    spans: Mutex<Vec<(Service, SpanData)>>,
    file: Option<Mutex<std::fs::File>>,
    /// Whether the last post to the collector failed (said once, until one succeeds again).
    failing: std::sync::atomic::AtomicBool,
    /// The seed of span and trace ids, and how many were drawn: one sequence for every host of
    /// a run, so that a restarted service draws on where it stopped. `None`: random.
    seed: Option<u64>,
    drawn: AtomicU64,
}

impl std::fmt::Debug for SpanSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanSink").field("seed", &self.0.seed).finish_non_exhaustive()
    }
}

/// `spans` as one OTLP request, grouped by service (`None`: no span).
fn request(spans: Vec<(Service, SpanData)>) -> Option<Request> {
    if spans.is_empty() {
        return None;
    }
    let mut by_service: BTreeMap<Service, Vec<SpanData>> = BTreeMap::new();
    for (service, span) in spans {
        by_service.entry(service).or_default().push(span);
    }
    let resource_spans = by_service
        .into_iter()
        .flat_map(|(service, spans)| {
            let resource = Resource::builder_empty().with_service_name(service.name()).build();
            opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope(spans, &(&resource).into())
        })
        .collect();
    Some(Request { resource_spans })
}

impl SpanSink {
    /// A sink that collects, its span and trace ids drawn from `seed` (the simulation).
    pub fn seeded(seed: u64) -> Self {
        SpanSink(Arc::new(SinkInner { collect: true, seed: Some(seed), ..SinkInner::default() }))
    }

    /// A process's sink: every span written to `export`'s file as it ends, and collected for its
    /// collector, if it names one ([`SpanSink::post`]).
    pub fn exporting(export: &Export) -> std::io::Result<Self> {
        let file = match &export.file {
            Some(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                Some(Mutex::new(std::fs::OpenOptions::new().create(true).append(true).open(path)?))
            }
            None => None,
        };
        Ok(SpanSink(Arc::new(SinkInner { collect: export.endpoint.is_some(), file, ..SinkInner::default() })))
    }

    /// The spans collected since the last take, as one OTLP request (`None`: none).
    pub fn take(&self) -> Option<Request> {
        request(std::mem::take(&mut *self.0.spans.lock().expect("span sink lock")))
    }

    /// Posts what was collected since the last post to the OTLP collector at `endpoint`
    /// (`/v1/traces`, JSON). A collector that does not answer costs its spans there (logged),
    /// never the file's.
    pub async fn post(&self, endpoint: &str) {
        let Some(request) = self.take() else { return };
        let body = serde_json::to_string(&request).expect("OTLP requests serialize");
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let posted = reqwest::Client::new().post(&url).header("content-type", "application/json").body(body).send().await;
        let failure = match posted.map(|r| r.status()) {
            Ok(status) if status.is_success() => None,
            Ok(status) => Some(format!("it answered {status}")),
            Err(e) => Some(format!("it did not answer: {e}")),
        };
        let failed_before = self.0.failing.swap(failure.is_some(), Ordering::Relaxed);
        match (failure, failed_before) {
            (Some(why), false) => tracing::warn!(%url, "spans not taken by the OTLP collector ({why}); said again once it takes them"),
            (Some(why), true) => tracing::debug!(%url, "spans not taken by the OTLP collector ({why})"),
            (None, true) => tracing::warn!(%url, "the OTLP collector takes spans again"),
            (None, false) => {}
        }
    }

    /// Takes `spans` as they end: written, collected.
    fn finished(&self, service: Service, spans: Vec<SpanData>) {
        if let Some(file) = &self.0.file {
            let written = spans.iter().cloned().map(|span| (service, span)).collect();
            if let Some(one) = request(written) {
                // One write per line, so that the processes of a run can share a file.
                let line = format!("{}\n", serde_json::to_string(&one).expect("OTLP requests serialize"));
                if let Err(e) = file.lock().expect("trace file lock").write_all(line.as_bytes()) {
                    tracing::warn!(error = %e, "writing spans");
                }
            }
        }
        if self.0.collect {
            self.0.spans.lock().expect("span sink lock").extend(spans.into_iter().map(|span| (service, span)));
        }
    }

    fn next_ids(&self) -> u64 {
        self.0.drawn.fetch_add(1, Ordering::Relaxed)
    }
}

/// Where a process's spans go: a file of OTLP JSON lines, a collector, both or neither.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Export {
    pub file: Option<PathBuf>,
    pub endpoint: Option<String>,
}

impl Export {
    /// `file`, and the collector `$OTEL_EXPORTER_OTLP_ENDPOINT` names, if set.
    pub fn from_env(file: Option<PathBuf>) -> Self {
        let endpoint = std::env::var(OTLP_ENDPOINT).ok().filter(|e| !e.is_empty());
        Export { file, endpoint }
    }

    pub fn is_none(&self) -> bool {
        self.file.is_none() && self.endpoint.is_none()
    }
}

/// Reads every span of a trace file (lines of OTLP JSON) back.
pub fn read_file(path: &Path) -> std::io::Result<Vec<Request>> {
    let text = match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        read => read?,
    };
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))
        })
        .collect()
}

/// The exporter of one service's provider: its finished spans into the sink, named by service.
#[derive(Debug)]
struct IntoSink {
    service: Service,
    sink: SpanSink,
}

impl SpanExporter for IntoSink {
    fn export(&self, batch: Vec<SpanData>) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        self.sink.finished(self.service, batch);
        std::future::ready(Ok(()))
    }
}

/// Span and trace ids drawn from the sink's seed: splitmix64 of the seed and a running count.
#[derive(Debug)]
struct SeededIds(SpanSink);

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl SeededIds {
    fn draw(&self) -> u64 {
        let seed = self.0 .0.seed.unwrap_or(0);
        // Never 0: an all-zero id is invalid.
        splitmix(seed ^ splitmix(self.0.next_ids())).max(1)
    }
}

impl IdGenerator for SeededIds {
    fn new_trace_id(&self) -> TraceId {
        TraceId::from((u128::from(self.draw()) << 64) | u128::from(self.draw()))
    }
    fn new_span_id(&self) -> SpanId {
        SpanId::from(self.draw())
    }
}

/// A service's tracer: off (no span is made, no context handed on), or on, stamping spans with
/// the host's clock.
#[derive(Clone, Default)]
pub struct Tracer(Option<Arc<On>>);

/// What a span's timestamps are read from.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

struct On {
    tracer: SdkTracer,
    clock: Clock,
    /// Kept so that the tracer's processor lives as long as the tracer.
    _provider: SdkTracerProvider,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Tracer(on)" } else { "Tracer(off)" })
    }
}

impl Tracer {
    /// No spans: the lab's explorer and benchmarks, and a process with nowhere to export.
    pub fn off() -> Self {
        Tracer(None)
    }

    /// `service`'s tracer, finishing its spans into `sink`, stamped by `clock`.
    pub fn new(service: Service, clock: Clock, sink: &SpanSink) -> Self {
        let exporter = IntoSink { service, sink: sink.clone() };
        let builder = SdkTracerProvider::builder().with_simple_exporter(exporter);
        let provider = match sink.0.seed {
            Some(_) => builder.with_id_generator(SeededIds(sink.clone())),
            None => builder.with_id_generator(RandomIdGenerator::default()),
        }
        .build();
        let tracer = provider.tracer("campus");
        Tracer(Some(Arc::new(On { tracer, clock, _provider: provider })))
    }

    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// A span starting now: a child of `parent`'s span if it has one (else the root of a new
    /// trace), linked to `links`.
    pub fn start(&self, name: impl Into<Cow<'static, str>>, kind: SpanKind, parent: &Context, links: Vec<SpanContext>) -> Span {
        let Some(on) = &self.0 else { return Span::off() };
        let links = links.into_iter().filter(SpanContext::is_valid).map(|link| Link::with_context(link)).collect();
        let span = on
            .tracer
            .span_builder(name)
            .with_kind(kind)
            .with_start_time((on.clock)())
            .with_links(links)
            .start_with_context(&on.tracer, parent);
        Span { cx: parent.with_span(span), clock: Some(on.clock.clone()) }
    }

    /// The span of handling a message or record whose `traceparent` is `published`: under, and
    /// linked to, the span that published it.
    pub fn consuming(&self, name: impl Into<Cow<'static, str>>, published: Option<&str>) -> Span {
        if !self.is_on() {
            return Span::off();
        }
        self.start(name, SpanKind::Consumer, &remote(published), vec![linked(published)])
    }

    /// A span starting now under the current context's span (see [`WithContext`]).
    pub fn start_here(&self, name: impl Into<Cow<'static, str>>, kind: SpanKind) -> Span {
        self.start(name, kind, &Context::current(), Vec::new())
    }
}

/// One span in progress. It ends when dropped (a cancelled call's span ends where it was
/// cancelled), stamped by its host's clock.
pub struct Span {
    cx: Context,
    clock: Option<Clock>,
}

impl Span {
    /// No span: what an off tracer starts.
    fn off() -> Self {
        Span { cx: Context::new(), clock: None }
    }

    /// The context with this span in it: run the work it times `.with_context(...)`, so that
    /// what it calls is its child.
    pub fn context(&self) -> Context {
        self.cx.clone()
    }

    /// This span's `traceparent` (`None` when tracing is off).
    pub fn traceparent(&self) -> Option<String> {
        traceparent_of(&self.cx)
    }

    pub fn set(&self, key: &'static str, value: impl Into<opentelemetry::Value>) {
        if self.clock.is_some() {
            self.cx.span().set_attribute(KeyValue::new(key, value));
        }
    }

    /// Marks the span failed, with why.
    pub fn fail(&self, why: impl Into<Cow<'static, str>>) {
        if self.clock.is_some() {
            self.cx.span().set_status(Status::error(why));
        }
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some(clock) = &self.clock {
            self.cx.span().end_with_timestamp(clock());
        }
    }
}

/// The attribute naming the order a span worked for: set on the request that placed it and on
/// every message and record of it, and read by the lab to gather one order's spans.
pub const ORDER_ID: &str = "campus.order_id";

/// Names the order the current span works for (nothing if it has none, or tracing is off).
pub fn tag_order(order_id: &str) {
    let cx = Context::current();
    if cx.has_active_span() {
        cx.span().set_attribute(KeyValue::new(ORDER_ID, order_id.to_owned()));
    }
}

struct One<'a>(Option<&'a str>);

impl Extractor for One<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.filter(|_| key == TRACEPARENT)
    }
    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}

struct Out(Option<String>);

impl Injector for Out {
    fn set(&mut self, key: &str, value: String) {
        if key == TRACEPARENT {
            self.0 = Some(value);
        }
    }
}

/// The context a received `traceparent` names (an empty one if it names none, or is malformed:
/// the work then starts a trace of its own).
pub fn remote(traceparent: Option<&str>) -> Context {
    TraceContextPropagator::new().extract(&One(traceparent))
}

/// The context a message is published under: the span its own `traceparent` names (set by whoever
/// handed it over: the outbox, Inventory's decision), else the current span.
pub fn publishing_under(traceparent: Option<&str>) -> Context {
    match traceparent {
        Some(_) => remote(traceparent),
        None => Context::current(),
    }
}

/// The span context a received `traceparent` names, to link to (invalid if none).
pub fn linked(traceparent: Option<&str>) -> SpanContext {
    remote(traceparent).span().span_context().clone()
}

/// The `traceparent` of `cx`'s span (`None` if it has no valid span).
pub fn traceparent_of(cx: &Context) -> Option<String> {
    let mut out = Out(None);
    TraceContextPropagator::new().inject_context(cx, &mut out);
    out.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_handed_on_names_the_same_span() {
        let sink = SpanSink::seeded(7);
        let tracer = Tracer::new(Service::Order, Arc::new(|| std::time::UNIX_EPOCH), &sink);
        let span = tracer.start("POST /order", SpanKind::Server, &Context::new(), Vec::new());
        let handed = span.traceparent().expect("a span on has a traceparent");
        assert!(handed.starts_with("00-") && handed.ends_with("-01"), "{handed}");
        let received = linked(Some(&handed));
        let sent = span.context().span().span_context().clone();
        assert_eq!((received.trace_id(), received.span_id()), (sent.trace_id(), sent.span_id()));
        assert!(received.is_remote() && received.is_sampled());
        assert!(!linked(Some("00-nonsense")).is_valid());
    }

    #[test]
    fn the_same_seed_draws_the_same_ids() {
        let ids = |seed| {
            let sink = SpanSink::seeded(seed);
            let tracer = Tracer::new(Service::Order, Arc::new(|| std::time::UNIX_EPOCH), &sink);
            let span = tracer.start("a", SpanKind::Internal, &Context::new(), Vec::new());
            span.traceparent()
        };
        assert_eq!(ids(3), ids(3));
        assert_ne!(ids(3), ids(4));
    }

    #[test]
    fn an_off_tracer_makes_no_span_and_hands_nothing_on() {
        let span = Tracer::off().start("a", SpanKind::Internal, &Context::new(), Vec::new());
        assert_eq!(span.traceparent(), None);
    }
}
