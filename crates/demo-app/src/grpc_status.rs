//! A gRPC call's outcome, which its response may carry late: an error
//! answered at once has `grpc-status` in its headers, a call that sent
//! messages has it in the trailers, and a call the client abandons or the
//! connection loses has none. Spans and metrics both wait for it.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::response::Response;
use http_body::{Frame, SizeHint};

/// CANCELLED: what a call cut before its end counts as.
pub const CANCELLED: u8 = 1;
/// UNKNOWN: a body that ended without a status.
pub const UNKNOWN: u8 = 2;

/// The `grpc-status` of `headers` (or trailers).
pub fn code(headers: &HeaderMap) -> Option<u8> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// `response` with `done` called once with its call's code: at once if the
/// headers carry it, else when the trailers arrive, [`CANCELLED`] if the
/// body fails or is dropped first, [`UNKNOWN`] if it ends without trailers.
pub fn when_done<F>(response: Response, done: F) -> Response
where
    F: FnOnce(u8) + Send + Unpin + 'static,
{
    if let Some(code) = code(response.headers()) {
        done(code);
        return response;
    }
    response.map(|body| Body::new(Watched { inner: body, done: Some(done) }))
}

struct Watched<F: FnOnce(u8)> {
    inner: Body,
    done: Option<F>,
}

impl<F: FnOnce(u8)> Watched<F> {
    fn finish(&mut self, code: u8) {
        if let Some(done) = self.done.take() {
            done(code);
        }
    }
}

impl<F: FnOnce(u8) + Send + Unpin + 'static> http_body::Body for Watched<F> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) if frame.is_trailers() => {
                let code = frame.trailers_ref().and_then(code).unwrap_or(UNKNOWN);
                self.finish(code);
            }
            Some(Err(_)) => self.finish(CANCELLED),
            None => self.finish(UNKNOWN),
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<F: FnOnce(u8)> Drop for Watched<F> {
    fn drop(&mut self) {
        self.finish(CANCELLED);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::body::Body;
    use axum::http::HeaderMap;
    use http_body_util::BodyExt as _;

    use super::{CANCELLED, when_done};

    fn watched(body: Body) -> (axum::response::Response, Arc<Mutex<Vec<u8>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        (when_done(axum::response::Response::new(body), move |code| sink.lock().unwrap().push(code)), seen)
    }

    #[tokio::test]
    async fn the_code_comes_from_the_trailers_or_the_cut() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "5".parse().unwrap());
        let frames = [
            Ok::<_, std::convert::Infallible>(http_body::Frame::data(axum::body::Bytes::from("m"))),
            Ok(http_body::Frame::trailers(trailers)),
        ];
        let (response, seen) = watched(Body::new(http_body_util::StreamBody::new(futures::stream::iter(frames))));
        response.into_body().collect().await.unwrap();
        assert_eq!(*seen.lock().unwrap(), [5]);

        let (response, seen) = watched(Body::from("a message, and no trailers yet"));
        drop(response);
        assert_eq!(*seen.lock().unwrap(), [CANCELLED], "a call dropped before its end counts as cancelled");
    }
}
