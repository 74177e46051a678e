//! Connection-level defences, below HTTP: a cap on open connections (one more is closed at
//! once), an idle timeout (a connection with no bytes either way for that long is closed) and
//! a first-request deadline (a connection whose first request has not reached the router
//! within the header timeout of its opening is closed). hyper's own header timeout starts only
//! once hyper-util has read enough bytes to tell HTTP/1 from HTTP/2, so a client that sends
//! fewer would otherwise hold its slot until the idle timeout, trickling a byte at a time
//! forever. All wrap the accepted TCP stream, before TLS: the TLS handshake counts against the
//! first-request deadline too.

use axum_server::accept::Accept;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Wraps an acceptor with the connection cap, the idle timeout and the first-request
/// deadline.
#[derive(Clone)]
pub struct Guarded<A> {
    inner: A,
    slots: Arc<Semaphore>,
    idle: Duration,
    first_request: Duration,
    refused: Arc<AtomicU64>,
}

impl<A> Guarded<A> {
    pub fn new(
        inner: A,
        max_connections: usize,
        idle: Duration,
        first_request: Duration,
        refused: Arc<AtomicU64>,
    ) -> Self {
        Self {
            inner,
            slots: Arc::new(Semaphore::new(max_connections.max(1))),
            idle,
            first_request,
            refused,
        }
    }
}

impl<A, I, S> Accept<I, S> for Guarded<A>
where
    A: Accept<GuardedStream<I>, MarkFirstRequest<S>> + Clone + Send + 'static,
    A::Future: Send,
    A::Stream: Send,
    A::Service: Send,
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Send + 'static,
{
    type Stream = A::Stream;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(A::Stream, A::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            // Dropping the stream closes the connection.
            return Box::pin(std::future::ready(Err(io::Error::other(
                "too many connections",
            ))));
        };
        let first_request_seen = Arc::new(AtomicBool::new(false));
        let guarded = GuardedStream {
            inner: stream,
            _permit: permit,
            idle: self.idle,
            deadline: Box::pin(tokio::time::sleep(self.idle)),
            first_request: Some(Box::pin(tokio::time::sleep(self.first_request))),
            first_request_seen: Arc::clone(&first_request_seen),
        };
        let service = MarkFirstRequest {
            inner: service,
            seen: first_request_seen,
        };
        let inner = self.inner.clone();
        Box::pin(async move { inner.accept(guarded, service).await })
    }
}

/// A connection's service, noting that a request reached it (which lifts the connection's
/// first-request deadline).
#[derive(Clone)]
pub struct MarkFirstRequest<S> {
    inner: S,
    seen: Arc<AtomicBool>,
}

impl<S, R> tower_service::Service<R> for MarkFirstRequest<S>
where
    S: tower_service::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.seen.store(true, Ordering::Relaxed);
        self.inner.call(request)
    }
}

/// An accepted stream holding its connection slot, closed after `idle` without traffic, or
/// when no request has come through it by the first-request deadline.
pub struct GuardedStream<I> {
    inner: I,
    _permit: OwnedSemaphorePermit,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    /// Dropped once a request has been seen.
    first_request: Option<Pin<Box<Sleep>>>,
    first_request_seen: Arc<AtomicBool>,
}

impl<I> GuardedStream<I> {
    fn active(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.idle);
    }

    /// An error once the first-request deadline has passed without a request.
    fn check_first_request(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let Some(first_request) = self.first_request.as_mut() else {
            return Poll::Pending;
        };
        if self.first_request_seen.load(Ordering::Relaxed) {
            self.first_request = None;
            return Poll::Pending;
        }
        match first_request.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "no request arrived in time",
            )),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Pending I/O: an error once the idle or the first-request deadline has passed.
    fn check_deadlines(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if let Poll::Ready(error) = self.check_first_request(cx) {
            return Poll::Ready(error);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "the connection was idle too long",
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for GuardedStream<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.active();
                }
                // A client trickling bytes keeps the idle deadline away but not this one.
                if let Poll::Ready(error) = this.check_first_request(cx) {
                    return Poll::Ready(Err(error));
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.check_deadlines(cx).map(Err),
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for GuardedStream<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(written)) => {
                this.active();
                Poll::Ready(Ok(written))
            }
            other => other,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
