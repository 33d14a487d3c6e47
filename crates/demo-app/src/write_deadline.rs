//! A deadline on writes that make no progress. hyper has a timeout for
//! reading a request's headers but none for writing an answer: a client
//! that never reads kept its connection, its response and the request body
//! it echoed for as long as it liked (30 such clients held 452 MB). Here a
//! write (or flush) that stays blocked for `limit` fails with `TimedOut`,
//! hyper drops the connection, and what it held is freed. Go's
//! `WriteTimeout` (podinfo's `--http-server-timeout`) plays this part.
//! Progress, however slow, resets the clock: a large download over a slow
//! link is not cut off.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

pub struct WriteDeadline<S> {
    inner: S,
    limit: Duration,
    /// Armed when a write first blocks, disarmed by any progress.
    blocked_since: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteDeadline<S> {
    pub fn new(inner: S, limit: Duration) -> Self {
        Self { inner, limit, blocked_since: None }
    }

    /// The outcome of a write attempt: ready disarms the timer; pending
    /// arms it (once) and fails when it fires.
    fn judge<T>(&mut self, attempt: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if attempt.is_ready() {
            self.blocked_since = None;
            return attempt;
        }
        let limit = self.limit;
        let timer =
            self.blocked_since.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + limit)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client read nothing for {limit:?} (--http-write-timeout)"),
        )))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let attempt = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.judge(attempt, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let attempt = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.judge(attempt, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let attempt = Pin::new(&mut self.inner).poll_flush(cx);
        self.judge(attempt, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let attempt = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.judge(attempt, cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt as _;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_write_nobody_reads_fails_after_the_limit() {
        // A 64-byte pipe whose reader never reads.
        let (client, _server) = tokio::io::duplex(64);
        let mut writer = WriteDeadline::new(client, Duration::from_secs(30));
        let started = Instant::now();
        let error = writer.write_all(&[0u8; 4096]).await.expect_err("nobody reads");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(error.to_string().contains("--http-write-timeout"), "{error}");
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_reading_is_not_cut_off() {
        use tokio::io::AsyncReadExt as _;
        let (client, mut server) = tokio::io::duplex(64);
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            let mut total = 0;
            // 64 bytes every 20 s: each wait under the limit, the whole far above it.
            while total < 1024 {
                tokio::time::sleep(Duration::from_secs(20)).await;
                total += server.read(&mut buf).await.unwrap();
            }
        });
        let mut writer = WriteDeadline::new(client, Duration::from_secs(30));
        writer.write_all(&[0u8; 1024]).await.expect("progress resets the deadline");
        reader.await.unwrap();
    }
}
