//! `smt serve --metrics ADDR`: the server's metrics at `http://ADDR/metrics` in
//! the OpenMetrics text format (which Prometheus scrapes), encoded by
//! `prometheus-client` from fresh `Endpoint::metrics` snapshots on every scrape,
//! summed over the endpoints of a server listening on several addresses.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::debug;

/// The exposition's content type (OpenMetrics 1.0, as `prometheus-client` writes it).
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Bounds on one scrape connection: a slow or silent client cannot hold a task.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_REQUEST_HEAD: usize = 8 << 10;

/// Reads the endpoints' metrics on each scrape.
#[derive(Debug)]
struct EndpointCollector(Vec<smt::Endpoint>);

/// What the exposition shows: counters, gauges and histograms, summed.
struct Snapshot {
    counters: Vec<(&'static str, &'static str, u64)>,
    memory: [usize; 6],
    calls_in_flight: usize,
    call_latency: smt::metrics::HistogramSnapshot,
    service_time: smt::metrics::HistogramSnapshot,
    helper_batches: u64,
}

impl EndpointCollector {
    fn snapshot(&self) -> Option<Snapshot> {
        let all: Vec<smt::metrics::Metrics> = self.0.iter().map(smt::Endpoint::metrics).collect();
        let (first, rest) = all.split_first()?;
        let mut sum = Snapshot {
            counters: crate::stats::sum_counters(all.iter().map(|m| m.stats.clone())),
            memory: [0; 6],
            calls_in_flight: 0,
            call_latency: first.call_latency.clone(),
            service_time: first.service_time.clone(),
            helper_batches: all.iter().map(|m| m.helper_batches).sum(),
        };
        for m in rest {
            add_histogram(&mut sum.call_latency, &m.call_latency);
            add_histogram(&mut sum.service_time, &m.service_time);
        }
        for m in &all {
            let mem = &m.memory;
            let each = [
                mem.sessions,
                mem.rpcs,
                mem.incoming_messages,
                mem.incoming_bytes,
                mem.queued_request_bytes,
                mem.outgoing_bytes,
            ];
            for (total, value) in sum.memory.iter_mut().zip(each) {
                *total += value;
            }
            sum.calls_in_flight += m.calls_in_flight;
        }
        Some(sum)
    }
}

fn add_histogram(sum: &mut smt::metrics::HistogramSnapshot, h: &smt::metrics::HistogramSnapshot) {
    for (total, n) in sum.buckets.iter_mut().zip(&h.buckets) {
        *total += n;
    }
    sum.count += h.count;
    sum.sum += h.sum;
}

impl Collector for EndpointCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(m) = self.snapshot() else { return Ok(()) };
        for &(name, help, value) in &m.counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let helper_batches = ConstCounter::new(m.helper_batches);
        helper_batches.encode(encoder.encode_descriptor(
            "helper_batches",
            "Receive batches handled by receive helpers rather than the driver",
            None,
            helper_batches.metric_type(),
        )?)?;
        let [sessions, rpcs, incoming_messages, incoming_bytes, queued_request_bytes, outgoing_bytes] =
            m.memory;
        let gauges: [(&str, &str, usize); 7] = [
            ("sessions", "Live sessions", sessions),
            ("rpcs", "RPCs of all sessions (client and server)", rpcs),
            ("calls_in_flight", "Client calls waiting for their response", m.calls_in_flight),
            ("incoming_messages", "Incomplete incoming messages", incoming_messages),
            ("incoming_bytes", "Bytes charged for incomplete incoming messages", incoming_bytes),
            (
                "queued_request_bytes",
                "Bytes of delivered requests not answered yet",
                queued_request_bytes,
            ),
            (
                "outgoing_bytes",
                "Bytes of outgoing messages kept for retransmission",
                outgoing_bytes,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let histograms = [
            ("call_latency", "Latency of successful client calls", &m.call_latency),
            (
                "service_time",
                "Time from a request reaching the application to its response",
                &m.service_time,
            ),
        ];
        for (name, help, h) in histograms {
            let mut buckets: Vec<(f64, u64)> = smt::metrics::LATENCY_BUCKETS
                .iter()
                .map(|b| b.as_secs_f64())
                .chain(std::iter::once(f64::INFINITY)) // written as le="+Inf"
                .zip(h.buckets.iter().copied())
                .collect();
            buckets.truncate(h.buckets.len());
            let mut metric = encoder.encode_descriptor(
                name,
                help,
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            metric.encode_histogram::<NoLabelSet>(h.sum.as_secs_f64(), h.count, &buckets, None)?;
        }
        Ok(())
    }
}

/// Serves the metrics of `endpoints` (summed) on `addr` until the returned task is
/// aborted; the bound address is returned (port 0 picks a free one).
pub async fn spawn(
    addr: SocketAddr,
    endpoints: Vec<smt::Endpoint>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))?;
    let local = listener.local_addr()?;
    let mut registry = Registry::with_prefix("smt");
    registry.register_collector(Box::new(EndpointCollector(endpoints)));
    let registry = std::sync::Arc::new(registry);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else { continue };
            let registry = registry.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &registry)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => debug!(%peer, "metrics request failed: {e:#}"),
                    Err(_) => debug!(%peer, "metrics request timed out"),
                }
            });
        }
    });
    Ok((local, task))
}

/// One HTTP/1.x exchange: `GET /metrics` gets the exposition, anything else a 404
/// (or 405 for other methods); the connection is then closed.
async fn answer(mut stream: TcpStream, registry: &Registry) -> Result<()> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 || head.len() > MAX_REQUEST_HEAD {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let request_line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = request_line.split(|&b| b == b' ');
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    let (status, content_type, body) = match (method, path) {
        (b"GET", b"/metrics") => {
            let mut body = String::new();
            prometheus_client::encoding::text::encode(&mut body, registry)
                .context("encoding the metrics")?;
            ("200 OK", CONTENT_TYPE, body)
        }
        (b"GET", _) => ("404 Not Found", "text/plain", "try /metrics\n".to_owned()),
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".to_owned()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(())
}
