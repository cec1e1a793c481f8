//! The writer thread: takes batches from the queue and writes them over HTTP (retrying
//! connection errors and 5xx answers with exponential backoff, dropping a batch a 4xx answer
//! rejects) or as UDP datagrams, and answers flushes.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::builder::Target;
use super::{error_chain, Queue};

/// The writer thread's state.
pub(super) struct Writer {
    /// The HTTP client (none for UDP).
    pub(super) client: Option<reqwest::Client>,
    pub(super) queue: Arc<Queue>,
    pub(super) target: Target,
    pub(super) flush_period: Duration,
    pub(super) max_backoff: Duration,
    pub(super) flushes: Arc<Mutex<Vec<tokio::sync::oneshot::Sender<()>>>>,
    /// Statuses already logged (4xx are logged once per status).
    pub(super) rejected: Mutex<Vec<u16>>,
}

/// Why a batch was not written.
enum Failure {
    /// Worth retrying (connection error, 5xx).
    Retry(String),
    /// Never worth retrying (4xx: bad data, unknown database, bad token).
    Reject(u16, String),
}

impl Writer {
    pub(super) async fn run(self, mut stopped: tokio::sync::oneshot::Receiver<()>) {
        let udp = match &self.target {
            Target::Udp { .. } => tokio::net::UdpSocket::bind("0.0.0.0:0").await.ok(),
            Target::Http { .. } => None,
        };
        let mut backoff = Duration::from_millis(100);
        loop {
            let stopping = tokio::select! {
                _ = tokio::time::sleep(self.flush_period) => false,
                _ = self.queue.batch_ready.notified() => false,
                _ = &mut stopped => true,
            };
            loop {
                let batch = self.queue.take_batch();
                if batch.is_empty() {
                    backoff = Duration::from_millis(100);
                    break;
                }
                let n = batch.len() as u64;
                match self.write(udp.as_ref(), &batch).await {
                    Ok(()) => {
                        self.queue.sent.fetch_add(n, Relaxed);
                    }
                    Err(Failure::Reject(status, body)) => {
                        self.queue.dropped.fetch_add(n, Relaxed);
                        let mut seen = self.rejected.lock().unwrap_or_else(PoisonError::into_inner);
                        if !seen.contains(&status) {
                            seen.push(status);
                            tracing::warn!(
                                status,
                                "vitalsign: InfluxDB rejected a batch of {n} points ({body}); \
                                 dropped, and this status is not logged again"
                            );
                        }
                    }
                    Err(Failure::Retry(reason)) => {
                        self.queue.put_back(batch);
                        if stopping {
                            break;
                        }
                        tracing::debug!(
                            "vitalsign: InfluxDB write failed ({reason}); retrying in {backoff:?}"
                        );
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(self.max_backoff);
                        break;
                    }
                }
            }
            if self.queue.len() == 0 {
                for done in self
                    .flushes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .drain(..)
                {
                    let _ = done.send(());
                }
            }
            if stopping {
                return;
            }
        }
    }

    async fn write(
        &self,
        udp: Option<&tokio::net::UdpSocket>,
        batch: &[Vec<u8>],
    ) -> Result<(), Failure> {
        match &self.target {
            Target::Http { url, token } => {
                let body: Vec<u8> = batch.concat();
                let client = self
                    .client
                    .as_ref()
                    .ok_or_else(|| Failure::Retry("no HTTP client".into()))?;
                let mut request = client.post(url).body(body);
                if let Some(token) = token {
                    request = request.header("authorization", format!("Token {token}"));
                }
                let response = request
                    .send()
                    .await
                    .map_err(|e| Failure::Retry(error_chain(&e)))?;
                let status = response.status();
                if status.is_success() {
                    return Ok(());
                }
                let body = response.text().await.unwrap_or_default();
                if status.is_client_error() {
                    Err(Failure::Reject(status.as_u16(), body.trim().to_owned()))
                } else {
                    Err(Failure::Retry(format!("{status}: {}", body.trim())))
                }
            }
            Target::Udp { addr, max_datagram } => {
                let socket = udp.ok_or_else(|| Failure::Retry("no UDP socket".into()))?;
                let mut datagram = Vec::with_capacity(*max_datagram);
                for line in batch {
                    if !datagram.is_empty() && datagram.len() + line.len() > *max_datagram {
                        socket
                            .send_to(&datagram, addr.as_str())
                            .await
                            .map_err(|e| Failure::Retry(e.to_string()))?;
                        datagram.clear();
                    }
                    datagram.extend_from_slice(line);
                }
                if !datagram.is_empty() {
                    socket
                        .send_to(&datagram, addr.as_str())
                        .await
                        .map_err(|e| Failure::Retry(e.to_string()))?;
                }
                Ok(())
            }
        }
    }
}
