//! Bodies on the hot path: read whole up to `--max-body`, streamed through beyond it.
//!
//! [`read_prefix`] buffers a body up to the cap. One that ends within it is returned
//! whole (today's behaviour: rewritable, and a mid-body failure becomes a clean
//! error). One that goes past it becomes a [`Tee`]: a body that replays what was read,
//! then passes the rest through frame by frame, hashing and counting as it goes, and
//! reports how it ended ([`TeeEnd`]) when it finishes, fails, stalls, is cut short by
//! a stop, or is dropped. Only the first `max` bytes are ever held.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;
use tokio::time::Sleep;

use crate::clock::SessionClock;
use crate::server::{Arrival, CUT_SHORT};

/// The error type of graphtape's bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a body did not arrive whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyFailure {
    /// The sender failed or went away.
    Failed(String),
    /// No data for longer than the timeout.
    Stalled(String),
    /// A stop cut the exchange short.
    Cut(String),
}

impl BodyFailure {
    /// The reason, for the record and the log.
    pub fn message(&self) -> &str {
        match self {
            BodyFailure::Failed(m) | BodyFailure::Stalled(m) | BodyFailure::Cut(m) => m,
        }
    }
}

/// How a streamed body ended: everything that crossed, hashed, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeeEnd {
    pub len: u64,
    pub sha256: [u8; 32],
    /// Session offset of the end (None if it did not end normally).
    pub end_us: Option<i64>,
    pub failure: Option<BodyFailure>,
}

/// A body read up to the cap.
pub enum Prefix<B> {
    /// Ended within the cap.
    Whole(Bytes),
    /// Failed, stalled or cut short within the cap: what did arrive.
    Broken(Bytes, BodyFailure),
    /// Went past the cap: the first `max` bytes, and the body to stream on.
    Over {
        kept: Bytes,
        tee: Box<Tee<B>>,
        end: oneshot::Receiver<TeeEnd>,
    },
}

/// What bounds a body read: the cap, the longest pause, and the stop.
pub struct ReadLimits<'a> {
    pub max: usize,
    pub stall: Duration,
    pub arrival: &'a Arrival,
    pub clock: &'a Arc<SessionClock>,
}

/// Reads `body` until it ends or passes `limits.max` bytes.
pub async fn read_prefix<B>(mut body: B, limits: ReadLimits<'_>) -> Prefix<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error,
{
    let mut buf = BytesMut::new();
    loop {
        let frame = tokio::select! {
            // Data that has arrived is taken before a stop that is also ready: a cut
            // keeps what arrived.
            biased;
            frame = tokio::time::timeout(limits.stall, body.frame()) => frame,
            () = limits.arrival.cut() => {
                let reason = cut_message(buf.len() as u64);
                return Prefix::Broken(buf.freeze(), BodyFailure::Cut(reason));
            }
        };
        let data = match frame {
            Err(_) => {
                let reason = stall_message(buf.len() as u64, limits.stall);
                return Prefix::Broken(buf.freeze(), BodyFailure::Stalled(reason));
            }
            Ok(None) => return Prefix::Whole(buf.freeze()),
            Ok(Some(Err(e))) => {
                let reason = format!(
                    "body ended after {} bytes: {}",
                    buf.len(),
                    crate::proxy::error_chain(&e)
                );
                return Prefix::Broken(buf.freeze(), BodyFailure::Failed(reason));
            }
            // Trailers are neither forwarded nor recorded.
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue,
            },
        };
        if buf.is_empty() && body.is_end_stream() && data.len() <= limits.max {
            // A single-frame body: hand it on without a copy.
            return Prefix::Whole(data);
        }
        let room = limits.max - buf.len();
        if data.len() <= room {
            buf.extend_from_slice(&data);
            tracing::trace!(bytes = buf.len(), "request body so far");
            continue;
        }
        // Past the cap: keep exactly `max` bytes, stream the rest. The kept prefix and
        // the replayed frames share memory.
        buf.extend_from_slice(&data[..room]);
        let kept = buf.freeze();
        let overflow = data.slice(room..);
        let (tee, end) = Tee::new(
            body,
            [kept.clone(), overflow],
            limits.stall,
            limits.arrival,
            limits.clock.clone(),
        );
        return Prefix::Over {
            kept,
            tee: Box::new(tee),
            end,
        };
    }
}

fn cut_message(after: u64) -> String {
    format!("{CUT_SHORT} (the body had sent {after} bytes)")
}

fn stall_message(after: u64, stall: Duration) -> String {
    format!(
        "body stalled: no data for {}s after {after} bytes",
        stall.as_secs_f64()
    )
}

/// A body streamed through: what was read first, then the rest of `inner`.
pub struct Tee<B> {
    pending: VecDeque<Bytes>,
    inner: B,
    hasher: ring::digest::Context,
    len: u64,
    stall: Duration,
    sleep: Pin<Box<Sleep>>,
    cut: Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
    clock: Arc<SessionClock>,
    done: Option<oneshot::Sender<TeeEnd>>,
}

impl<B> Tee<B> {
    fn new(
        inner: B,
        first: [Bytes; 2],
        stall: Duration,
        arrival: &Arrival,
        clock: Arc<SessionClock>,
    ) -> (Tee<B>, oneshot::Receiver<TeeEnd>) {
        let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
        let mut len = 0;
        for chunk in &first {
            hasher.update(chunk);
            len += chunk.len() as u64;
        }
        let (tx, rx) = oneshot::channel();
        let tee = Tee {
            pending: first.into_iter().filter(|b| !b.is_empty()).collect(),
            inner,
            hasher,
            len,
            stall,
            sleep: Box::pin(tokio::time::sleep(stall)),
            cut: Box::pin(arrival.cut_owned()),
            clock,
            done: Some(tx),
        };
        (tee, rx)
    }

    fn finish(&mut self, failure: Option<BodyFailure>) {
        let Some(done) = self.done.take() else { return };
        let hasher = std::mem::replace(
            &mut self.hasher,
            ring::digest::Context::new(&ring::digest::SHA256),
        );
        let mut sha256 = [0; 32];
        sha256.copy_from_slice(hasher.finish().as_ref());
        let _ = done.send(TeeEnd {
            len: self.len,
            sha256,
            end_us: failure.is_none().then(|| self.clock.now_us()),
            failure,
        });
    }

    fn fail(&mut self, failure: BodyFailure) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let message = failure.message().to_string();
        self.finish(Some(failure));
        Poll::Ready(Some(Err(std::io::Error::other(message).into())))
    }
}

impl<B> Body for Tee<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.done.is_none() && this.pending.is_empty() {
            return Poll::Ready(None);
        }
        if let Some(chunk) = this.pending.pop_front() {
            if this.pending.is_empty() && this.inner.is_end_stream() {
                this.finish(None);
            }
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if this.cut.as_mut().poll(cx).is_ready() {
            return this.fail(BodyFailure::Cut(cut_message(this.len)));
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers: not forwarded, not recorded
                    };
                    this.hasher.update(&data);
                    this.len += data.len() as u64;
                    let next = tokio::time::Instant::now() + this.stall;
                    this.sleep.as_mut().reset(next);
                    // The receiver may stop polling once it has the length it expects.
                    if this.inner.is_end_stream() {
                        this.finish(None);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(None) => {
                    this.finish(None);
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(e))) => {
                    let reason = format!(
                        "body ended after {} bytes: {}",
                        this.len,
                        crate::proxy::error_chain(&e)
                    );
                    return this.fail(BodyFailure::Failed(reason));
                }
                Poll::Pending => {
                    if this.sleep.as_mut().poll(cx).is_ready() {
                        let reason = stall_message(this.len, this.stall);
                        return this.fail(BodyFailure::Stalled(reason));
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done.is_none() && self.pending.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        let pending: u64 = self.pending.iter().map(|b| b.len() as u64).sum();
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + pending);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + pending);
        }
        hint
    }
}

impl<B> Drop for Tee<B> {
    fn drop(&mut self) {
        if self.done.is_some() {
            let reason = format!(
                "the receiving side stopped reading after {} bytes",
                self.len
            );
            self.finish(Some(BodyFailure::Failed(reason)));
        }
    }
}

/// The body of every request graphtape forwards and every response it sends back:
/// whole bytes, or a body streamed through.
pub enum ProxyBody {
    Full(Full<Bytes>),
    /// Boxed: rare, and much larger than the common case.
    Tee(Box<Tee<hyper::body::Incoming>>),
}

impl From<Full<Bytes>> for ProxyBody {
    fn from(body: Full<Bytes>) -> Self {
        ProxyBody::Full(body)
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Full(full) => Pin::new(full).poll_frame(cx).map_err(|e| match e {}),
            ProxyBody::Tee(tee) => Pin::new(tee.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(full) => full.is_end_stream(),
            ProxyBody::Tee(tee) => tee.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(full) => full.size_hint(),
            ProxyBody::Tee(tee) => tee.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::sha256_hex;

    /// A body that yields the given chunks (then an error, if asked), one per poll.
    struct Chunks {
        chunks: VecDeque<&'static [u8]>,
        fail: bool,
    }

    impl Body for Chunks {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            Poll::Ready(match self.chunks.pop_front() {
                Some(c) => Some(Ok(Frame::data(Bytes::from_static(c)))),
                None if self.fail => {
                    self.fail = false;
                    Some(Err(std::io::Error::other("peer reset")))
                }
                None => None,
            })
        }
    }

    fn chunks(parts: &[&'static [u8]], fail: bool) -> Chunks {
        Chunks {
            chunks: parts.iter().copied().collect(),
            fail,
        }
    }

    async fn read(body: Chunks, max: usize) -> Prefix<Chunks> {
        let arrival = Arrival::detached();
        let clock = Arc::new(SessionClock::start());
        read_prefix(
            body,
            ReadLimits {
                max,
                stall: Duration::from_secs(5),
                arrival: &arrival,
                clock: &clock,
            },
        )
        .await
    }

    #[tokio::test]
    async fn a_body_within_the_cap_is_whole() {
        match read(chunks(&[b"ab", b"cd"], false), 4).await {
            Prefix::Whole(b) => assert_eq!(&b[..], b"abcd"),
            _ => panic!("expected whole"),
        }
        match read(chunks(&[b"ab"], true), 4).await {
            Prefix::Broken(b, BodyFailure::Failed(m)) => {
                assert_eq!(&b[..], b"ab");
                assert!(
                    m.contains("after 2 bytes") && m.contains("peer reset"),
                    "{m}"
                );
            }
            _ => panic!("expected broken"),
        }
    }

    #[tokio::test]
    async fn a_body_over_the_cap_streams_whole_and_keeps_a_prefix() {
        let Prefix::Over { kept, tee, end } =
            read(chunks(&[b"abc", b"def", b"gh"], false), 4).await
        else {
            panic!("expected a stream");
        };
        assert_eq!(&kept[..], b"abcd");
        let all = tee.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"abcdefgh");
        let end = end.await.unwrap();
        assert_eq!(end.len, 8);
        assert_eq!(crate::exchange::hex(&end.sha256), sha256_hex(b"abcdefgh"));
        assert!(end.end_us.is_some() && end.failure.is_none());
    }

    #[tokio::test]
    async fn a_stream_that_breaks_or_is_dropped_says_how_far_it_got() {
        let Prefix::Over { tee, end, .. } = read(chunks(&[b"abcde", b"fg"], true), 4).await else {
            panic!("expected a stream");
        };
        assert!(tee.collect().await.is_err());
        let end = end.await.unwrap();
        assert_eq!(end.len, 7);
        assert_eq!(crate::exchange::hex(&end.sha256), sha256_hex(b"abcdefg"));
        assert!(matches!(end.failure, Some(BodyFailure::Failed(m)) if m.contains("after 7 bytes")));

        let Prefix::Over { tee, end, .. } = read(chunks(&[b"abcde", b"fg"], false), 4).await else {
            panic!("expected a stream");
        };
        drop(tee);
        let end = end.await.unwrap();
        assert!(
            matches!(&end.failure, Some(BodyFailure::Failed(m)) if m.contains("stopped reading after 5 bytes")),
            "{end:?}"
        );
    }
}
