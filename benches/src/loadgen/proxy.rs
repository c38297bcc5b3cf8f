//! A latency-injecting TCP proxy (`--rtt-ms`): PostgreSQL usually sits on another
//! host, and a client that waits for every statement's answer pays one round trip
//! per statement there, which a loopback connection hides.
//!
//! Every connection accepted on 127.0.0.1 is relayed to the upstream server;
//! each chunk read from either side is written to the other side half the RTT
//! after it was read. Chunks are queued in order and the reading goes on while
//! earlier chunks wait, so the delay is added to each byte without throttling the
//! stream (a 1 MB reply is not held back 0.5 ms per read, only shifted by 0.5 ms).
//!
//! Bounded: at most `max_connections` relayed at once (more are closed as soon as
//! they are accepted, and counted), and at most `max_buffered_bytes` waiting in
//! the queues of all connections together (a reader that would exceed it waits,
//! so TCP's own flow control slows the sender), besides one fixed read buffer per
//! direction of each connection.
//!
//! Why a timer thread: tokio's timer has millisecond resolution, so a 0.5 ms
//! `sleep` lasts 0.5–1.5 ms and a "1 ms RTT" would be about 2 ms. Deadlines here
//! are kept by one thread per proxy sleeping on a condition variable (a futex
//! with a nanosecond timeout, an hrtimer in Linux; ~50 µs of timer slack), which
//! wakes each waiting relay through a oneshot channel.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};

/// How much the proxy may hold.
#[derive(Clone, Copy, Debug)]
pub struct ProxyLimits {
    /// Connections relayed at once; more are closed when accepted.
    pub max_connections: usize,
    /// Bytes read and not yet written, all connections together.
    pub max_buffered_bytes: usize,
}

impl Default for ProxyLimits {
    fn default() -> Self {
        ProxyLimits { max_connections: 512, max_buffered_bytes: 32 << 20 }
    }
}

/// Bytes one read takes at most (one fixed buffer per direction and connection).
const READ_CHUNK: usize = 16 << 10;

/// Counters, for the run's record.
#[derive(Debug, Default)]
pub struct ProxyStats {
    pub accepted: AtomicU64,
    /// Connections closed at once because `max_connections` were open.
    pub refused: AtomicU64,
    /// Connections whose upstream could not be reached.
    pub upstream_failures: AtomicU64,
    pub bytes: AtomicU64,
}

/// A running proxy: listening on 127.0.0.1 until dropped.
pub struct LatencyProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    rtt: Duration,
    stats: Arc<ProxyStats>,
    accept: tokio::task::JoinHandle<()>,
    timer: Timer,
}

impl std::fmt::Debug for LatencyProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.upstream)
            .field("rtt", &self.rtt)
            .finish_non_exhaustive()
    }
}

impl LatencyProxy {
    /// Listens on an ephemeral port of 127.0.0.1 and relays each connection to
    /// `upstream`, adding `rtt / 2` to each direction. Must be called inside a
    /// tokio runtime (with I/O and time enabled), which runs the relays.
    pub async fn start(upstream: SocketAddr, rtt: Duration, limits: ProxyLimits) -> io::Result<LatencyProxy> {
        if limits.max_connections == 0 || limits.max_buffered_bytes < READ_CHUNK {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("proxy limits: at least one connection and {READ_CHUNK} buffered bytes"),
            ));
        }
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(ProxyStats::default());
        let timer = Timer::start()?;
        let relay = Relay {
            upstream,
            delay: rtt / 2,
            budget: Arc::new(Semaphore::new(limits.max_buffered_bytes)),
            stats: stats.clone(),
            timer: timer.handle(),
        };
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        let accept = tokio::spawn(accept_loop(listener, relay, slots));
        Ok(LatencyProxy { addr, upstream, rtt, stats, accept, timer })
    }

    /// Where clients connect instead of the upstream.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    pub fn rtt(&self) -> Duration {
        self.rtt
    }

    pub fn stats(&self) -> &ProxyStats {
        &self.stats
    }
}

impl Drop for LatencyProxy {
    fn drop(&mut self) {
        // The accept task owns every relay (a JoinSet): aborting it ends them all.
        self.accept.abort();
        self.timer.stop();
    }
}

/// What every relay shares.
#[derive(Clone)]
struct Relay {
    upstream: SocketAddr,
    delay: Duration,
    budget: Arc<Semaphore>,
    stats: Arc<ProxyStats>,
    timer: TimerHandle,
}

async fn accept_loop(listener: TcpListener, relay: Relay, slots: Arc<Semaphore>) {
    let mut relays = tokio::task::JoinSet::new();
    loop {
        // Finished relays leave the set.
        while relays.try_join_next().is_some() {}
        let Ok((inbound, peer)) = listener.accept().await else {
            // EMFILE and the like: pause instead of spinning.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        // The listener is on 127.0.0.1; a peer elsewhere cannot occur, but the
        // proxy serves no one else in any case.
        if !peer.ip().is_loopback() {
            continue;
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            relay.stats.refused.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        relay.stats.accepted.fetch_add(1, Ordering::Relaxed);
        let relay = relay.clone();
        relays.spawn(async move {
            let _slot = slot;
            let Ok(outbound) = TcpStream::connect(relay.upstream).await else {
                relay.stats.upstream_failures.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let (client_read, client_write) = inbound.into_split();
            let (server_read, server_write) = outbound.into_split();
            // Either direction failing ends the connection (both halves drop).
            let _ = tokio::try_join!(
                direction(client_read, server_write, &relay),
                direction(server_read, client_write, &relay)
            );
        });
    }
}

/// One chunk in flight: its bytes (none for the end of the stream), when it may
/// be written, and its share of the byte budget (released when it is dropped).
struct Chunk {
    due: Instant,
    bytes: Option<Vec<u8>>,
    _budget: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Relays one direction: a reader that stamps and queues each chunk, and a
/// writer that writes each at its time, running side by side.
async fn direction(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, relay: &Relay) -> io::Result<()> {
    // Bounded in count too; the byte budget is the real bound.
    let (tx, mut rx) = mpsc::channel::<Chunk>(1024);
    let reader = async move {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = from.read(&mut buf).await?;
            let due = Instant::now() + relay.delay;
            if n == 0 {
                // The end of the stream travels with the same delay, after the data.
                let _ = tx.send(Chunk { due, bytes: None, _budget: None }).await;
                return Ok::<(), io::Error>(());
            }
            let permit = relay.budget.clone().acquire_many_owned(n as u32).await.map_err(io::Error::other)?;
            relay.stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
            let chunk = Chunk { due, bytes: Some(buf[..n].to_vec()), _budget: Some(permit) };
            if tx.send(chunk).await.is_err() {
                return Ok(());
            }
        }
    };
    let writer = async move {
        while let Some(chunk) = rx.recv().await {
            relay.timer.sleep_until(chunk.due).await;
            match &chunk.bytes {
                Some(bytes) => to.write_all(bytes).await?,
                None => {
                    to.shutdown().await?;
                    return Ok::<(), io::Error>(());
                }
            }
        }
        Ok(())
    };
    tokio::try_join!(reader, writer).map(|_| ())
}

// --- The timer thread -------------------------------------------------------------

struct Entry {
    due: Instant,
    seq: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
    stopped: bool,
}

#[derive(Default)]
struct TimerShared {
    queue: Mutex<Queue>,
    changed: Condvar,
}

/// Wakes futures at sub-millisecond deadlines (see the module documentation).
struct Timer {
    shared: Arc<TimerShared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Clone)]
struct TimerHandle(Arc<TimerShared>);

impl Timer {
    fn start() -> io::Result<Timer> {
        let shared = Arc::new(TimerShared::default());
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new().name("latency-proxy-timer".into()).spawn(move || timer_loop(&shared))?
        };
        Ok(Timer { shared, thread: Some(thread) })
    }

    fn handle(&self) -> TimerHandle {
        TimerHandle(self.shared.clone())
    }

    fn stop(&mut self) {
        if let Ok(mut queue) = self.shared.queue.lock() {
            queue.stopped = true;
            // Pending sleepers wake (their senders drop) and their relays end.
            queue.heap.clear();
        }
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn timer_loop(shared: &TimerShared) {
    // Linux lets a timed wait end up to the thread's timer slack late (50 µs by
    // default), on each of the two waits of a round trip: ask for none.
    // SAFETY: prctl(PR_SET_TIMERSLACK) only changes this thread's slack; it takes
    // plain integers and touches no memory of ours.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
    let Ok(mut queue) = shared.queue.lock() else { return };
    loop {
        if queue.stopped {
            return;
        }
        let now = Instant::now();
        let next = queue.heap.peek().map(|Reverse(e)| e.due);
        queue = match next {
            None => match shared.changed.wait(queue) {
                Ok(q) => q,
                Err(_) => return,
            },
            Some(due) if due <= now => {
                if let Some(Reverse(entry)) = queue.heap.pop() {
                    let _ = entry.wake.send(());
                }
                queue
            }
            Some(due) => match shared.changed.wait_timeout(queue, due - now) {
                Ok((q, _)) => q,
                Err(_) => return,
            },
        };
    }
}

impl TimerHandle {
    /// Returns at `due` or soon after; at once when it has passed.
    async fn sleep_until(&self, due: Instant) {
        if due <= Instant::now() {
            return;
        }
        let (wake, woken) = oneshot::channel();
        {
            let Ok(mut queue) = self.0.queue.lock() else { return };
            if queue.stopped {
                return;
            }
            queue.seq += 1;
            let seq = queue.seq;
            let earliest = queue.heap.peek().is_none_or(|Reverse(e)| due < e.due);
            queue.heap.push(Reverse(Entry { due, seq, wake }));
            if earliest {
                self.0.changed.notify_one();
            }
        }
        let _ = woken.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that echoes every byte back, on its own task.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let (mut r, mut w) = socket.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_and_its_reply_take_at_least_the_rtt() {
        let rtt = Duration::from_millis(20);
        let proxy = LatencyProxy::start(echo_server().await, rtt, ProxyLimits::default()).await.unwrap();
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        client.set_nodelay(true).unwrap();
        for _ in 0..3 {
            let start = Instant::now();
            client.write_all(b"ping").await.unwrap();
            let mut reply = [0u8; 4];
            client.read_exact(&mut reply).await.unwrap();
            let elapsed = start.elapsed();
            assert_eq!(&reply, b"ping");
            // A lower bound, not a timing benchmark: each direction waits rtt/2.
            assert!(elapsed >= rtt, "a round trip through the proxy took {elapsed:?}, less than the RTT {rtt:?}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bytes_pass_through_unchanged_and_in_order() {
        let proxy =
            LatencyProxy::start(echo_server().await, Duration::from_millis(2), ProxyLimits::default()).await.unwrap();
        let client = TcpStream::connect(proxy.addr()).await.unwrap();
        let (mut r, mut w) = client.into_split();
        // 1 MiB of a pattern that shows any reordering, dropped or repeated byte,
        // sent in writes of odd sizes while the reply is read.
        let sent: Vec<u8> = (0..(1u32 << 20)).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let to_send = sent.clone();
        let writer = tokio::spawn(async move {
            for piece in to_send.chunks(7_919) {
                w.write_all(piece).await.unwrap();
            }
            w.shutdown().await.unwrap();
        });
        let mut received = Vec::new();
        r.read_to_end(&mut received).await.unwrap();
        writer.await.unwrap();
        assert_eq!(received.len(), sent.len());
        assert!(received == sent, "the bytes came back changed or out of order");
        assert_eq!(proxy.stats().bytes.load(Ordering::Relaxed), 2 * sent.len() as u64);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_over_the_limit_are_closed() {
        let limits = ProxyLimits { max_connections: 1, ..ProxyLimits::default() };
        let proxy = LatencyProxy::start(echo_server().await, Duration::from_millis(1), limits).await.unwrap();
        let mut first = TcpStream::connect(proxy.addr()).await.unwrap();
        first.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        first.read_exact(&mut one).await.unwrap();
        let mut second = TcpStream::connect(proxy.addr()).await.unwrap();
        let mut rest = Vec::new();
        // Closed by the proxy: end of stream (or a reset), no echo.
        let read = second.read_to_end(&mut rest).await;
        assert!(read.map_or(true, |n| n == 0), "a connection over the limit was relayed");
        assert_eq!(proxy.stats().refused.load(Ordering::Relaxed), 1);
    }
}
