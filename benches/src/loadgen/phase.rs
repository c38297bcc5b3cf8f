//! One measured phase: what both systems implement, and the workers that drive it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::report::Phase;

/// How one system issues and revokes.
pub(crate) trait Target: Send + Sync {
    /// Issues one credential; returns the handle its revocation needs.
    fn issue(&self) -> impl Future<Output = Result<String, String>> + Send;
    fn revoke(&self, handle: String) -> impl Future<Output = Result<(), String>> + Send;
}

/// What one phase produced.
pub(crate) struct PhaseResult {
    pub(crate) handles: Vec<String>,
    pub(crate) latencies: Vec<Duration>,
    pub(crate) failed: usize,
    pub(crate) first_error: Option<String>,
    pub(crate) elapsed: Duration,
    pub(crate) cpu: Duration,
}

/// Runs `count` operations with `workers` workers; `inputs` (for revocations) are
/// handed out in order.
pub(crate) async fn run_phase<T: Target + 'static>(
    target: &Arc<T>,
    phase: Phase,
    workers: usize,
    count: usize,
    inputs: Vec<String>,
    progress: &indicatif::ProgressBar,
) -> PhaseResult {
    let next = Arc::new(AtomicUsize::new(0));
    let inputs = Arc::new(std::sync::Mutex::new(inputs.into_iter().map(Some).collect::<Vec<_>>()));
    let cpu_before = crate::process_cpu();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (target, next, inputs, progress) = (target.clone(), next.clone(), inputs.clone(), progress.clone());
        tasks.spawn(async move {
            let mut out = (Vec::new(), Vec::new(), 0usize, None::<String>);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let t0 = Instant::now();
                let result = match phase {
                    Phase::Issue => target.issue().await,
                    Phase::Revoke => {
                        let handle = inputs.lock().expect("inputs lock")[i].take().expect("one revocation per handle");
                        target.revoke(handle).await.map(|()| String::new())
                    }
                };
                match result {
                    Ok(handle) => {
                        out.1.push(t0.elapsed());
                        if phase == Phase::Issue {
                            out.0.push(handle);
                        }
                    }
                    Err(e) => {
                        out.2 += 1;
                        out.3.get_or_insert(e);
                    }
                }
                progress.inc(1);
            }
            out
        });
    }
    let mut result = PhaseResult {
        handles: Vec::new(),
        latencies: Vec::with_capacity(count),
        failed: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        cpu: Duration::ZERO,
    };
    while let Some(joined) = tasks.join_next().await {
        let (handles, latencies, failed, error) = joined.expect("load generator worker panicked");
        result.handles.extend(handles);
        result.latencies.extend(latencies);
        result.failed += failed;
        if result.first_error.is_none() {
            result.first_error = error;
        }
    }
    result.elapsed = start.elapsed();
    result.cpu = crate::process_cpu().saturating_sub(cpu_before);
    result
}
