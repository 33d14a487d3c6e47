//! Fault injection for app routes: the switchable "everything fails" mode,
//! and podinfo's --random-delay / --random-error.

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::future::{BoxFuture, Either, FutureExt as _};
use rand::Rng;

use crate::api_error::PodinfoError;
use crate::config::{Config, DelayUnit};
use crate::state::AppState;

/// Fault injection as a tower layer rather than `from_fn`: with every fault
/// off (nearly always) a request pays two flag reads, not a boxed future and
/// a clone of the routes behind it.
#[derive(Clone)]
pub struct FaultsLayer(AppState);

impl FaultsLayer {
    pub fn new(state: AppState) -> Self {
        Self(state)
    }
}

impl<S> tower::Layer<S> for FaultsLayer {
    type Service = Faults<S>;

    fn layer(&self, inner: S) -> Faults<S> {
        Faults { inner, state: self.0.clone() }
    }
}

#[derive(Clone)]
pub struct Faults<S> {
    inner: S,
    state: AppState,
}

impl<S> tower::Service<Request> for Faults<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let config = &self.state.config;
        if !(self.state.flags.fault_injection() || config.random_delay || config.random_error) {
            return Either::Left(self.inner.call(request));
        }
        // The service polled ready is the one to call; its clone stays here.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        Either::Right(inject(self.state.clone(), ready, request).boxed())
    }
}

async fn inject<S>(state: AppState, mut inner: S, request: Request) -> Result<Response, Infallible>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    if state.flags.fault_injection() {
        return Ok(PodinfoError::new(StatusCode::INTERNAL_SERVER_ERROR, "fault injection is enabled").into_response());
    }
    if let Some(delay) = random_delay(&state.config) {
        tokio::time::sleep(delay).await;
    }
    if let Some(status) = random_error(&state.config) {
        return Ok(status.into_response());
    }
    inner.call(request).await
}

/// A delay in [min, max] units, when --random-delay is on.
fn random_delay(config: &Config) -> Option<Duration> {
    if !config.random_delay {
        return None;
    }
    let (low, high) = (config.random_delay_min, config.random_delay_max.max(config.random_delay_min));
    let amount = rand::rng().random_range(low..=high);
    Some(match config.random_delay_unit {
        DelayUnit::S => Duration::from_secs(amount),
        DelayUnit::Ms => Duration::from_millis(amount),
    })
}

/// One request in three fails with 500, 400 or 409, when --random-error is on.
fn random_error(config: &Config) -> Option<StatusCode> {
    const CODES: [StatusCode; 3] = [StatusCode::INTERNAL_SERVER_ERROR, StatusCode::BAD_REQUEST, StatusCode::CONFLICT];
    if !config.random_error {
        return None;
    }
    let mut rng = rand::rng();
    rng.random_ratio(1, 3).then(|| CODES[rng.random_range(0..CODES.len())])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Config {
        use clap::Parser;
        Config::parse_from(std::iter::once("demo-app").chain(args.iter().copied()))
    }

    #[test]
    fn delays_stay_within_bounds_and_units() {
        let c = config(&[
            "--random-delay",
            "--random-delay-unit",
            "ms",
            "--random-delay-min",
            "5",
            "--random-delay-max",
            "7",
        ]);
        for _ in 0..100 {
            let d = random_delay(&c).unwrap();
            assert!((Duration::from_millis(5)..=Duration::from_millis(7)).contains(&d), "{d:?}");
        }
        assert_eq!(random_delay(&config(&[])), None);
    }

    #[test]
    fn random_errors_hit_about_a_third_with_podinfo_codes() {
        let c = config(&["--random-error"]);
        let errors: Vec<_> = (0..3000).filter_map(|_| random_error(&c)).collect();
        assert!((800..1200).contains(&errors.len()), "{} errors of 3000", errors.len());
        assert!(errors.iter().all(|s| [500, 400, 409].contains(&s.as_u16())));
        assert_eq!(random_error(&config(&[])), None);
    }
}
