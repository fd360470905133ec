//! A connection wrapper that fails a write that makes no progress for the stall timeout:
//! a client that stops reading its answer (a download is held in memory until sent) is
//! cut instead of holding the object and its connection for as long as it likes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// The error a stalled write ends the connection with; [`is_write_stall`] finds it.
const MESSAGE: &str = "the client stopped reading the answer (body_stall_secs)";

pub struct WriteStall<T> {
    inner: T,
    stall: Duration,
    /// Running while writes are blocked; cleared by any progress.
    blocked: Option<Pin<Box<Sleep>>>,
}

impl<T> WriteStall<T> {
    pub fn new(inner: T, stall: Duration) -> Self {
        Self { inner, stall, blocked: None }
    }

    /// What to answer for a write that returned `poll`: progress resets the clock, and a
    /// write still blocked when the clock runs out fails.
    fn watch<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if poll.is_ready() {
            self.blocked = None;
            return poll;
        }
        let stall = self.stall;
        let sleep = self.blocked.get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, MESSAGE))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Whether a connection ended because its client stopped reading.
pub fn is_write_stall(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut && io.to_string() == MESSAGE)
        {
            return true;
        }
        source = s.source();
    }
    false
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteStall<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteStall<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_stops_is_cut_after_the_stall_and_a_slow_one_is_not() {
        let stall = Duration::from_secs(5);
        let (server, mut client) = tokio::io::duplex(1024);
        let mut guarded = WriteStall::new(server, stall);
        // The client reads 1 KiB every 4 s: slower than the writes, never a 5 s pause.
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            for _ in 0..8 {
                tokio::time::sleep(Duration::from_secs(4)).await;
                client.read_exact(&mut buf).await.unwrap();
            }
            client
        });
        guarded.write_all(&[1u8; 8 * 1024]).await.unwrap();
        let _client = reader.await.unwrap();
        // Now nobody reads: the write fails once the stall is up.
        let start = tokio::time::Instant::now();
        let e = guarded.write_all(&[2u8; 4096]).await.unwrap_err();
        assert_eq!(start.elapsed(), stall);
        assert!(is_write_stall(&e), "{e}");
        assert!(!is_write_stall(&io::Error::new(io::ErrorKind::TimedOut, "another timeout")));
    }
}
