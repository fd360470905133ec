//! Pacing the bytes a backend moves: an HTTP body that releases its data slice by slice as
//! a [`Pacer`] allows (the arka-server client's and the S3 client's requests and answers),
//! and [`PacedLocal`], a decorator for a local folder or NAS share.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use http_body::{Body, Frame, SizeHint};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

use super::limit::Pacer;

/// A body whose data frames come out in slices of at most [`Pacer::slice`] bytes, each
/// after the pacer allows it. Trailers and errors pass through; the size hint stays exact,
/// so an HTTP client still sends a Content-Length.
pub struct PacedBody<B> {
    inner: B,
    pacer: Arc<Pacer>,
    /// Data taken from `inner` and not yet released.
    pending: Bytes,
    /// A slice whose reservation is being slept off, and the sleep.
    ready: Option<(Bytes, Pin<Box<tokio::time::Sleep>>)>,
}

impl<B> PacedBody<B> {
    pub fn new(inner: B, pacer: Arc<Pacer>) -> Self {
        Self { inner, pacer, pending: Bytes::new(), ready: None }
    }
}

impl<B> Body for PacedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        loop {
            if let Some((_, sleep)) = &mut this.ready {
                ready!(sleep.as_mut().poll(cx));
                let (slice, _) = this.ready.take().expect("checked above");
                return Poll::Ready(Some(Ok(Frame::data(slice))));
            }
            if !this.pending.is_empty() {
                let n = this.pending.len().min(this.pacer.slice());
                let slice = this.pending.split_to(n);
                let wait = this.pacer.reserve(n);
                if wait.is_zero() {
                    return Poll::Ready(Some(Ok(Frame::data(slice))));
                }
                this.ready = Some((slice, Box::pin(tokio::time::sleep(wait))));
                continue;
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => this.pending = data,
                    Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                },
                other => return Poll::Ready(other),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ready.is_none() && self.pending.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let held = (self.pending.len() + self.ready.as_ref().map_or(0, |(s, _)| s.len())) as u64;
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + held);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + held);
        }
        hint
    }
}

/// Paces a stream of byte chunks: each chunk is released in slices the pacer allows.
pub fn paced_stream<E: Send + 'static>(
    stream: BoxStream<'static, Result<Bytes, E>>,
    pacer: Arc<Pacer>,
) -> BoxStream<'static, Result<Bytes, E>> {
    stream
        .flat_map(move |chunk| {
            let pacer = pacer.clone();
            let slices: Vec<Result<Bytes, E>> = match chunk {
                Ok(mut bytes) => {
                    let mut out = Vec::new();
                    while !bytes.is_empty() {
                        out.push(Ok(bytes.split_to(bytes.len().min(pacer.slice()))));
                    }
                    out
                }
                Err(e) => vec![Err(e)],
            };
            futures::stream::iter(slices).then(move |slice| {
                let pacer = pacer.clone();
                async move {
                    if let Ok(bytes) = &slice {
                        pacer.take(bytes.len()).await;
                    }
                    slice
                }
            })
        })
        .boxed()
}

/// A local folder or NAS share with its reads paced as they stream and its writes paced
/// per object: the local backend writes an object in one call (it stages and links it,
/// which keeps writes create-only and durable), so a write waits until the bucket has let
/// the whole object through, slice by slice, and then goes at the disk's speed.
pub struct PacedLocal<S> {
    inner: S,
    upload: Option<Arc<Pacer>>,
    download: Option<Arc<Pacer>>,
}

impl<S> PacedLocal<S> {
    pub fn new(inner: S, upload: Option<Arc<Pacer>>, download: Option<Arc<Pacer>>) -> Self {
        Self { inner, upload, download }
    }
}

impl<S: fmt::Debug> fmt::Debug for PacedLocal<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacedLocal").field("inner", &self.inner).field("upload", &self.upload).finish()
    }
}

impl<S: fmt::Display> fmt::Display for PacedLocal<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "paced {}", self.inner)
    }
}

#[async_trait]
impl<S: ObjectStore> ObjectStore for PacedLocal<S> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if let Some(up) = &self.upload {
            up.take_all(payload.content_length()).await;
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        // arka writes every object with one put; nothing here uploads in parts.
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        let result = self.inner.get_opts(location, options).await?;
        let Some(down) = &self.download else { return Ok(result) };
        let (meta, range, attributes, extensions) =
            (result.meta.clone(), result.range.clone(), result.attributes.clone(), result.extensions.clone());
        let payload = GetResultPayload::Stream(paced_stream(result.into_stream(), down.clone()));
        Ok(GetResult { payload, meta, range, attributes, extensions })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use tokio::time::{Duration, Instant};

    #[tokio::test(start_paused = true)]
    async fn a_paced_body_releases_its_bytes_at_the_rate_in_slices_with_an_exact_size() {
        let pacer = Arc::new(Pacer::new(64 << 10, None));
        let data = Bytes::from(vec![7u8; 320 << 10]);
        let mut body = PacedBody::new(Full::new(data.clone()), pacer);
        assert_eq!(body.size_hint().exact(), Some(320 << 10));
        let started = Instant::now();
        let mut got = Vec::new();
        while let Some(frame) = body.frame().await {
            let chunk = frame.unwrap().into_data().unwrap();
            assert!(chunk.len() <= SLICE_FOR_TEST, "{}", chunk.len());
            got.extend_from_slice(&chunk);
        }
        assert_eq!(got, data);
        // 64 KiB saved up, 256 KiB more at 64 KiB/s.
        assert_about(started.elapsed(), 4.0);
    }

    const SLICE_FOR_TEST: usize = super::super::limit::SLICE;

    /// The paused clock jumps to each timer, give or take the timer wheel's millisecond.
    #[track_caller]
    fn assert_about(elapsed: Duration, secs: f64) {
        assert!((elapsed.as_secs_f64() - secs).abs() < 0.05, "{elapsed:?}, not {secs} s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_paced_local_folder_reads_and_writes_at_the_rate() {
        let dir = tempfile::tempdir().unwrap();
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        let limits = super::super::limit::Limits::new(Some(64 << 10), Some(128 << 10), None);
        let store = PacedLocal::new(fs, limits.upload, limits.download);
        let data = Bytes::from(vec![1u8; 320 << 10]);
        let started = Instant::now();
        store.put_opts(&Path::from("packs/ab/cd"), data.clone().into(), PutOptions::default()).await.unwrap();
        assert_about(started.elapsed(), 4.0);
        let started = Instant::now();
        let read = store.get_opts(&Path::from("packs/ab/cd"), GetOptions::default()).await.unwrap();
        assert_eq!(read.bytes().await.unwrap(), data);
        // 128 KiB saved up, 192 KiB more at 128 KiB/s.
        assert_about(started.elapsed(), 1.5);
    }
}
