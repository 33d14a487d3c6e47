//! The sampler OTEL_TRACES_SAMPLER names. The settings nearly every
//! deployment runs (the default `parentbased_always_on`, `always_on`, and
//! the ratio samplers at a ratio of 1 or more) record every span, or every
//! span whose parent was sampled: that is answered here in a few
//! instructions, where the SDK's boxed, nested samplers cost a request
//! about 150 (callgrind, `GET /api/info`). Any other setting is the SDK's
//! own sampler, built from the same variables (the process environment).

use opentelemetry::trace::{Link, SpanKind, TraceContextExt as _, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SamplingDecision, SamplingResult, ShouldSample};

#[derive(Debug, Clone)]
pub enum Configured {
    /// Every span; with `follow_parent`, every span whose parent (when it
    /// has one) was sampled.
    RecordAll { follow_parent: bool },
    /// The SDK's sampler for any other setting (ratios below 1 or not given,
    /// always off, unknown names, which it warns about), or one a test gives.
    Sdk(Box<dyn ShouldSample>),
}

impl Configured {
    /// The sampler the process environment configures, read as the SDK
    /// reads it (names and arguments untrimmed, as it matches them), which
    /// builds any sampler this does not answer in place.
    pub fn from_env() -> Self {
        Self::from_settings(|name| std::env::var(name).ok())
    }

    /// Records every span for the settings that say so (an argument the
    /// SDK cannot parse also makes a ratio of 1, but the SDK warns about
    /// it: that case stays the SDK's).
    fn from_settings(var: impl Fn(&str) -> Option<String>) -> Self {
        let ratio_of_one =
            || var("OTEL_TRACES_SAMPLER_ARG").and_then(|arg| arg.parse::<f64>().ok()).is_some_and(|r| r >= 1.0);
        match var("OTEL_TRACES_SAMPLER").as_deref() {
            Some("always_on") => Self::RecordAll { follow_parent: false },
            Some("traceidratio") if ratio_of_one() => Self::RecordAll { follow_parent: false },
            None | Some("parentbased_always_on") => Self::RecordAll { follow_parent: true },
            Some("parentbased_traceidratio") if ratio_of_one() => Self::RecordAll { follow_parent: true },
            _ => Self::Sdk(opentelemetry_sdk::trace::Config::default().sampler),
        }
    }
}

impl Configured {
    /// Whether a span, child of `parent`, is recorded, for the samplers
    /// answered in place (None for the SDK's): the decision `should_sample`
    /// takes, without a `SamplingResult` to build and move (its trace state
    /// is the parent's, it has no attribute).
    pub fn records(&self, parent: &Context) -> Option<bool> {
        match self {
            Self::RecordAll { follow_parent } => {
                Some(!(*follow_parent && parent.has_active_span()) || parent.span().span_context().is_sampled())
            }
            Self::Sdk(_) => None,
        }
    }
}

impl ShouldSample for Configured {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        if let Self::Sdk(sdk) = self {
            return sdk.should_sample(parent_context, trace_id, name, span_kind, attributes, links);
        }
        // The SDK's rules: a parent-based sampler follows a parent span when
        // there is one; the trace state is the parent's.
        let parent = parent_context.filter(|cx| cx.has_active_span());
        let record = parent.map_or(Some(true), |cx| self.records(cx)).unwrap_or(true);
        SamplingResult {
            decision: if record { SamplingDecision::RecordAndSample } else { SamplingDecision::Drop },
            attributes: Vec::new(),
            trace_state: parent.map(|cx| cx.span().span_context().trace_state().clone()).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceState};
    use opentelemetry_sdk::trace::Sampler;

    use super::*;

    /// The sampler these settings configure.
    fn configured(pairs: &[(&str, &str)]) -> Configured {
        Configured::from_settings(|name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
    }

    fn parent(sampled: bool) -> Context {
        let state = TraceState::from_key_value([("vendor", "x")]).unwrap();
        let flags = if sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
        let span = SpanContext::new(TraceId::from(7), SpanId::from(9), flags, true, state);
        Context::new().with_remote_span_context(span)
    }

    /// What both samplers decide for a root span, a sampled parent and a
    /// parent not sampled.
    fn decisions(sampler: &dyn ShouldSample) -> Vec<(SamplingDecision, String)> {
        [None, Some(parent(true)), Some(parent(false))]
            .iter()
            .map(|cx| {
                let result =
                    sampler.should_sample(cx.as_ref(), TraceId::from(42), "GET /", &SpanKind::Server, &[], &[]);
                assert!(result.attributes.is_empty());
                (result.decision, result.trace_state.header())
            })
            .collect()
    }

    #[test]
    fn every_setting_that_records_all_decides_as_the_sdk_does() {
        let cases: [(&[(&str, &str)], Sampler); 5] = [
            (&[], Sampler::ParentBased(Box::new(Sampler::AlwaysOn))),
            (&[("OTEL_TRACES_SAMPLER", "always_on")], Sampler::AlwaysOn),
            (&[("OTEL_TRACES_SAMPLER", "parentbased_always_on")], Sampler::ParentBased(Box::new(Sampler::AlwaysOn))),
            (
                &[("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "1.0")],
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(1.0))),
            ),
            (
                &[("OTEL_TRACES_SAMPLER", "traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "1")],
                Sampler::TraceIdRatioBased(1.0),
            ),
        ];
        for (env, sdk) in cases {
            let ours = configured(env);
            assert!(matches!(ours, Configured::RecordAll { .. }), "{env:?}");
            assert_eq!(decisions(&ours), decisions(&sdk), "{env:?}");
            // The decision taken at once (telemetry/recording.rs) is the same.
            let at_once: Vec<_> = [Context::new(), parent(true), parent(false)]
                .iter()
                .map(|cx| ours.records(cx).map(|r| r.then_some(SamplingDecision::RecordAndSample)))
                .collect();
            let full: Vec<_> = decisions(&sdk)
                .into_iter()
                .map(|(d, _)| Some((d == SamplingDecision::RecordAndSample).then_some(d)))
                .collect();
            assert_eq!(at_once, full, "{env:?}");
        }
        assert!(configured(&[("OTEL_TRACES_SAMPLER", "always_off")]).records(&Context::new()).is_none());
        // The parent's trace state is handed on; a parent not sampled is followed.
        let parent_based = decisions(&configured(&[]));
        assert_eq!(parent_based[1], (SamplingDecision::RecordAndSample, "vendor=x".to_string()));
        assert_eq!(parent_based[2].0, SamplingDecision::Drop);
    }

    #[test]
    fn other_settings_are_the_sdk_sampler() {
        for env in [
            &[("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "0.5")][..],
            &[("OTEL_TRACES_SAMPLER", "traceidratio")],
            &[("OTEL_TRACES_SAMPLER", "always_off")],
            // Not trimmed: the SDK matches names as written, and warns.
            &[("OTEL_TRACES_SAMPLER", "always_on ")],
            &[("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", " 1.0")],
        ] {
            assert!(matches!(configured(env), Configured::Sdk(_)), "{env:?}");
        }
    }
}
