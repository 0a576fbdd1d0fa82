//! A deadline on every request the Kubernetes client sends, headers and body together, whose
//! error names the call (verb, resource, namespace/name, the HTTP request) and the server: a
//! stalled API server then ends the run with a message that says what was waited for, instead
//! of a bare "operation timed out" (or a run that hangs).
//!
//! It is one layer of kube-rs's service stack, so every call is covered: the tool's own, the
//! discovery kube-rs does for dynamic objects, and the reads of the diagnosis and the preflight.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request that took longer than the deadline; its text names the call and the server.
#[derive(Debug)]
pub struct TimedOut(String);

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TimedOut {}

/// The layer: `timeout` per request, `server` as the kubeconfig names it.
#[derive(Clone)]
pub struct DeadlineLayer {
    pub timeout: Duration,
    pub server: Arc<str>,
}

impl<S> tower_layer::Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Deadline<S> {
    inner: S,
    layer: DeadlineLayer,
}

impl DeadlineLayer {
    fn timed_out(&self, call: &str) -> TimedOut {
        TimedOut(format!(
            "the Kubernetes API at {} did not answer {call} within {}s: check that the API \
             server is up and not overloaded, or raise CLEARML_SCRIPT_KUBE_TIMEOUT (seconds)",
            self.server,
            self.timeout.as_secs()
        ))
    }
}

impl<S, ReqBody, B> tower_service::Service<http::Request<ReqBody>> for Deadline<S>
where
    S: tower_service::Service<http::Request<ReqBody>, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: http_body::Body + Unpin + Send + 'static,
{
    type Response = http::Response<TimedBody<B>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let call: Arc<str> = describe_call(request.method(), request.uri()).into();
        let layer = self.layer.clone();
        let deadline = tokio::time::Instant::now() + layer.timeout;
        let answer = self.inner.call(request);
        Box::pin(async move {
            match tokio::time::timeout_at(deadline, answer).await {
                Ok(Ok(response)) => Ok(response.map(|inner| TimedBody {
                    inner,
                    sleep: Box::pin(tokio::time::sleep_until(deadline)),
                    call,
                    layer,
                })),
                Ok(Err(e)) => Err(e.into()),
                Err(_) => Err(Box::new(layer.timed_out(&call)) as BoxError),
            }
        })
    }
}

/// A response body read under the request's deadline.
pub struct TimedBody<B> {
    inner: B,
    sleep: Pin<Box<tokio::time::Sleep>>,
    call: Arc<str>,
    layer: DeadlineLayer,
}

impl<B> http_body::Body for TimedBody<B>
where
    B: http_body::Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    Poll::Ready(Some(Err(Box::new(this.layer.timed_out(&this.call)))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A request as `kubectl` would name it: `` `patch secrets clearml/name` (PATCH /api/v1/…) ``.
pub fn describe_call(method: &http::Method, uri: &http::Uri) -> String {
    let path = uri.path();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // the resource part after /api/VERSION or /apis/GROUP/VERSION
    let rest = match segments.as_slice() {
        ["api", _, rest @ ..] => Some((None, rest)),
        ["apis", group, _, rest @ ..] => Some((Some(*group), rest)),
        _ => None,
    };
    let named = rest.and_then(|(group, rest)| {
        let (namespace, rest) = match rest {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(*ns), rest),
            _ => (None, rest),
        };
        let (resource, name, sub) = match rest {
            [] => return None,
            [resource] => (*resource, None, None),
            [resource, name] => (*resource, Some(*name), None),
            [resource, name, sub, ..] => (*resource, Some(*name), Some(*sub)),
        };
        let watch = uri
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
        let verb = match (method.as_str(), name, watch) {
            ("GET", _, true) => "watch",
            ("GET", Some(_), _) => "get",
            ("GET", None, _) => "list",
            ("POST", ..) => "create",
            ("PUT", ..) => "update",
            ("PATCH", ..) => "patch",
            ("DELETE", None, _) => "deletecollection",
            ("DELETE", ..) => "delete",
            (other, ..) => other,
        };
        let mut resource = match group {
            Some(g) => format!("{resource}.{g}"),
            None => resource.to_string(),
        };
        if let Some(sub) = sub {
            resource = format!("{resource}/{sub}");
        }
        let object = match (namespace, name) {
            (Some(ns), Some(n)) => format!(" {ns}/{n}"),
            (Some(ns), None) => format!(" in {ns}"),
            (None, Some(n)) => format!(" {n}"),
            (None, None) => String::new(),
        };
        Some(format!("`{verb} {resource}{object}`"))
    });
    let request = format!("{method} {path}");
    match named {
        Some(named) => format!("{named} ({request})"),
        // discovery and /version
        None => format!("`{request}`"),
    }
}

/// The deadline per request: `CLEARML_SCRIPT_KUBE_TIMEOUT` (seconds), else `default`.
pub fn timeout(default: Duration) -> Result<Duration, String> {
    match std::env::var("CLEARML_SCRIPT_KUBE_TIMEOUT") {
        Err(_) => Ok(default),
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
            .ok_or_else(|| {
                format!(
                    "CLEARML_SCRIPT_KUBE_TIMEOUT={v:?}: give the Kubernetes request timeout as a \
                     whole number of seconds, such as 120"
                )
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(method: &str, uri: &str) -> String {
        describe_call(&method.parse().unwrap(), &uri.parse().unwrap())
    }

    #[test]
    fn calls_are_named_as_kubectl_names_them() {
        assert_eq!(
            named(
                "PATCH",
                "/api/v1/namespaces/clearml/secrets/creds?fieldManager=x"
            ),
            "`patch secrets clearml/creds` (PATCH /api/v1/namespaces/clearml/secrets/creds)"
        );
        assert_eq!(
            named(
                "GET",
                "/api/v1/namespaces/clearml/secrets?labelSelector=owner%3Dhelm"
            ),
            "`list secrets in clearml` (GET /api/v1/namespaces/clearml/secrets)"
        );
        assert_eq!(
            named("PATCH", "/api/v1/namespaces/clearml"),
            "`patch namespaces clearml` (PATCH /api/v1/namespaces/clearml)"
        );
        assert_eq!(
            named("GET", "/apis/networking.k8s.io/v1/ingressclasses"),
            "`list ingressclasses.networking.k8s.io` (GET /apis/networking.k8s.io/v1/ingressclasses)"
        );
        assert_eq!(
            named("GET", "/apis/apps/v1/namespaces/a/deployments?watch=true"),
            "`watch deployments.apps in a` (GET /apis/apps/v1/namespaces/a/deployments)"
        );
        assert_eq!(
            named("DELETE", "/apis/apps/v1/namespaces/a/deployments/web"),
            "`delete deployments.apps a/web` (DELETE /apis/apps/v1/namespaces/a/deployments/web)"
        );
        assert_eq!(named("GET", "/version"), "`GET /version`");
        assert_eq!(named("GET", "/apis/apps/v1"), "`GET /apis/apps/v1`");
    }
}
